// modelbox: the C++ client of a modelbox server (the modelbox.v1 gRPC API).
//
// A Client logs runs (metrics, params, events) in batches from a background thread, with the
// same at-most-once batch ids as the Python SDK, reads runs, metrics and models back, resolves
// a model reference and streams its files to a folder or a std::ostream, and follows the
// change feed from a sequence number.
//
//   auto client = modelbox::Client::Dial("grpc://127.0.0.1:50051");
//   modelbox::RunOptions options;
//   options.experiment = "ranker";
//   auto run = client->StartRun(options);
//   for (int64_t step = 0; step < 1000; ++step) run->LogMetric("loss", 1.0 / (step + 1), step);
//   run->End(modelbox::kFinished);   // sends what is pending, marks the run finished
//
// Logging calls never throw and never block on the network: a record the server refuses, or
// one past Options::max_pending, is dropped and counted in Stats. Reading calls throw
// modelbox::Error, which carries the gRPC status code.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <grpcpp/support/client_interceptor.h>
#include <grpcpp/support/status.h>

namespace modelbox {

inline constexpr int kDefaultPort = 50051;
inline constexpr const char* kFinished = "finished";
inline constexpr const char* kFailed = "failed";
inline constexpr const char* kKilled = "killed";

// A call the server refused or could not answer.
class Error : public std::runtime_error {
 public:
  Error(grpc::StatusCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  grpc::StatusCode code() const { return code_; }

 private:
  grpc::StatusCode code_;
};

using InterceptorFactory = std::function<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>()>;

// Options of a Client; the defaults suit most programs.
struct Options {
  std::string token;    // sent as "authorization: Bearer <token>"; empty: MODELBOX_TOKEN
  std::string ca_file;  // PEM roots for grpcs://; empty: MODELBOX_TLS_CA, else the system's
  size_t batch_points = 10000;                        // most metric points per WriteBatch call
  std::chrono::milliseconds flush_interval{250};      // records wait at most this long
  size_t max_pending = 2000000;                       // records kept while the server is away
  std::chrono::milliseconds call_timeout{30000};      // each read call
  std::chrono::milliseconds write_timeout{60000};     // each WriteBatch attempt
  std::chrono::milliseconds close_timeout{30000};     // Close, End and the destructor
  std::vector<InterceptorFactory> interceptors;       // client interceptors (tracing, tests)
  std::function<void(const std::string&)> warn;       // warnings, once per cause; default stderr
};

// A parameter or attribute value, kept as its JSON text.
class Value {
 public:
  Value(bool v);
  Value(int v);
  Value(long v);
  Value(long long v);
  Value(unsigned v);
  Value(unsigned long v);
  Value(unsigned long long v);
  Value(double v);
  Value(const char* v);
  Value(std::string_view v);
  Value(const std::string& v);
  static Value Json(std::string json_text);  // a value that is JSON already (a list, an object)
  const std::string& json() const { return json_; }

 private:
  Value() = default;
  std::string json_;
};

using Attributes = std::map<std::string, Value>;

struct RunOptions {
  std::string experiment;  // empty: "default"
  std::string name;
  std::map<std::string, std::string> tags;
  std::string parent_run_id;
  std::string id;  // empty: a fresh id
};

struct Stats {
  uint64_t logged = 0;      // records accepted (a metric point is one record)
  uint64_t stored = 0;      // records the server confirmed
  uint64_t dropped = 0;     // records given up on, for the reasons below
  std::map<std::string, uint64_t> drop_reasons;
  uint64_t pending = 0;     // records waiting in memory
  uint64_t batches = 0;     // WriteBatch calls that succeeded
  uint64_t duplicates = 0;  // of those, batches the server had stored already (a re-send)
  uint64_t retries = 0;     // WriteBatch attempts that failed and were tried again
  std::string last_error;
};

class Client;
class Writer;

// A run being logged. Every Log* call appends to memory and returns; safe from any thread.
class Run {
 public:
  const std::string& id() const { return id_; }
  void LogMetric(std::string_view key, double value, int64_t step);
  void LogMetric(std::string_view key, double value, int64_t step, int64_t epoch);
  void LogParam(std::string_view key, const Value& value);
  void LogEvent(std::string_view name, const Attributes& attrs = {});
  // An event that lasted `duration_s` seconds from `start` (seconds since the Unix epoch).
  void LogTimedEvent(std::string_view name, double start, double duration_s, const Attributes& attrs = {});
  void SetProgress(double fraction);
  void SetTags(const std::map<std::string, std::string>& tags);
  // Waits until everything logged before the call is stored; false on timeout or drops.
  bool Flush(std::chrono::milliseconds timeout);
  // Marks the run finished / failed / killed and flushes (Options::close_timeout). Once only.
  bool End(std::string_view status = kFinished);

  Run(std::string id, uint32_t index, std::shared_ptr<Writer> writer);

 private:
  std::string id_;
  uint32_t index_;
  std::shared_ptr<Writer> writer_;
  std::atomic<bool> ended_{false};
};

struct Experiment {
  std::string id, name;
  double created_at = 0;
};

struct RunInfo {
  std::string id, experiment_id, experiment, name, status;
  double start_time = 0;
  std::optional<double> end_time, progress;
  std::string parent_run_id;
  std::map<std::string, std::string> params_json;  // key -> JSON text of the value
  std::map<std::string, std::string> tags;
  std::string env_json;
};

struct RunsQuery {
  std::string experiment;  // name or id; empty: every experiment
  std::string status;
  uint32_t limit = 0;      // 0: no limit
};

struct MetricPoint {
  int64_t step = 0;
  double value = 0;
  double timestamp = 0;
  std::optional<int64_t> epoch;
};

struct EventInfo {
  std::string name;
  double timestamp = 0;
  std::optional<double> duration_s;
  std::string attrs_json;
};

struct ModelFile {
  std::string name;   // relative name inside the model's folder
  std::string path;   // what Download takes
  int64_t bytes = -1;  // -1: missing when the model was logged
  std::string sha256;
};

struct Model {
  std::string id, name;
  uint32_t version = 0;
  std::string framework, run_id, experiment_id;
  std::vector<ModelFile> files;
  std::string metadata_json;
  std::map<std::string, std::string> labels;
  std::vector<std::string> datasets;
  std::string status;  // draft | final
  double created_at = 0;
};

struct ModelsQuery {
  std::string name;
  std::map<std::string, std::string> labels;
  std::string run_id;
};

struct DownloadedFile {
  std::string name, path;
  uint64_t bytes = 0;
  std::string sha256;
};

struct DownloadedModel {
  Model model;
  std::string dir;  // <dest>/<name>-v<version>, as the Python SDK names it
  std::vector<DownloadedFile> files;
};

struct ChangeEvent {
  uint64_t seq = 0;
  std::string kind, object_type, object_id;
  std::string payload_json;
  std::string actor;  // who made the change: a token's user, "token", "anonymous", or an OS user
};

// Parses grpc://HOST[:PORT] or grpcs://HOST[:PORT]; throws Error(INVALID_ARGUMENT) otherwise.
struct Target {
  std::string address;  // host:port
  bool tls = false;
};
Target ParseUri(const std::string& uri);

class Client {
 public:
  // Opens a lazy channel: never waits for the server. Throws Error for a malformed URI or an
  // unreadable CA file.
  static std::unique_ptr<Client> Dial(const std::string& uri, Options options = {});
  ~Client();  // Close(options.close_timeout)
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const std::string& target() const;

  // --- logging
  // Queues the run's start (no network call). Throws Error(INVALID_ARGUMENT) for a malformed
  // name, tag or id, and Error(FAILED_PRECONDITION) on a closed client.
  std::shared_ptr<Run> StartRun(const RunOptions& options = {});
  Stats stats() const;
  // Sends what is pending until the timeout, then gives up on the rest (counted as dropped).
  // True when nothing was dropped. Logging after Close drops (and counts) the records.
  bool Close(std::chrono::milliseconds timeout);

  // --- reading (throw Error)
  std::vector<Experiment> Experiments();
  std::vector<RunInfo> Runs(const RunsQuery& query = {});
  RunInfo GetRun(const std::string& run_id);  // id or a unique prefix of 4+ characters
  std::vector<std::string> MetricKeys(const std::string& run_id);
  std::vector<MetricPoint> Metrics(const std::string& run_id, const std::string& key);
  std::vector<EventInfo> Events(const std::string& run_id, const std::string& name = "");
  std::vector<Model> Models(const ModelsQuery& query = {});

  // Resolves a model reference on the server. The reference is passed through as given: an id
  // or a unique id prefix today; NAME@VERSION, NAME@latest, NAME@ALIAS wherever the server
  // resolves them, with no change here.
  Model GetModel(const std::string& ref);
  // Writes the model's files into <dest_dir>/<name>-v<version>/, each checked against the size
  // and sha256 the server recorded before it is renamed into place.
  DownloadedModel DownloadModel(const std::string& ref, const std::string& dest_dir);
  // Streams one stored file to `out`; returns its sha256. Checks size and sha256 against `file`
  // (Error DATA_LOSS when they differ).
  std::string WriteModelFile(const ModelFile& file, std::ostream& out);
  // Streams any stored file (a ModelFile's path) to `out`; returns {bytes, sha256}.
  std::pair<uint64_t, std::string> Download(const std::string& path, std::ostream& out);

  // --- the change feed
  std::vector<ChangeEvent> Changes(uint64_t since, uint32_t limit, uint64_t* last_seq = nullptr);
  uint64_t LastChangeSeq();
  // Calls fn with every change after `since`, in order, as they happen, reconnecting and
  // resuming after the last event seen when the server goes away. Returns when fn returns
  // false (true), or at the deadline (false); throws on an error retrying cannot cure.
  bool Watch(uint64_t since, const std::function<bool(const ChangeEvent&)>& fn,
             std::chrono::system_clock::time_point deadline = std::chrono::system_clock::time_point::max());

  struct Impl;

 private:
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace modelbox
