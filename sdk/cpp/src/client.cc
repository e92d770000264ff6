// Client: the channel (grpc:// or grpcs://, token metadata), reads, model downloads, the change feed.
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "connection.h"
#include "internal.h"
#include "modelbox/modelbox.h"
#include "writer.h"

namespace modelbox {

namespace fs = std::filesystem;
using internal::Connection;

// ------------------------------------------------------------------------------------ Value

Value::Value(bool v) : json_(v ? "true" : "false") {}
Value::Value(int v) : json_(std::to_string(v)) {}
Value::Value(long v) : json_(std::to_string(v)) {}
Value::Value(long long v) : json_(std::to_string(v)) {}
Value::Value(unsigned v) : json_(std::to_string(v)) {}
Value::Value(unsigned long v) : json_(std::to_string(v)) {}
Value::Value(unsigned long long v) : json_(std::to_string(v)) {}
Value::Value(double v) : json_(internal::JsonDouble(v)) {}
Value::Value(const char* v) : json_(internal::JsonString(v ? v : "")) {}
Value::Value(std::string_view v) : json_(internal::JsonString(v)) {}
Value::Value(const std::string& v) : json_(internal::JsonString(v)) {}

Value Value::Json(std::string json_text) {
  Value value;
  value.json_ = std::move(json_text);
  return value;
}

// ------------------------------------------------------------------------------------ URI

Target ParseUri(const std::string& uri) {
  auto bad = [&](const std::string& why) {
    return Error(grpc::StatusCode::INVALID_ARGUMENT, "'" + uri + "' " + why);
  };
  auto sep = uri.find("://");
  if (sep == std::string::npos) throw bad("is not a server URI; expected grpc://HOST:PORT or grpcs://HOST:PORT");
  std::string scheme = uri.substr(0, sep);
  std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](unsigned char c) { return std::tolower(c); });
  if (scheme != "grpc" && scheme != "grpcs") throw bad("is not a server URI; expected grpc://HOST:PORT or grpcs://HOST:PORT");
  std::string rest = uri.substr(sep + 3);
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find_first_of("/?#@") != std::string::npos) throw bad("has a user, path or query; expected grpc://HOST:PORT");
  std::string host, port;
  if (!rest.empty() && rest.front() == '[') {  // [IPv6]:port
    auto close = rest.find(']');
    if (close == std::string::npos) throw bad("has an unclosed [");
    host = rest.substr(0, close + 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') throw bad("has a malformed port");
      port = rest.substr(close + 2);
    }
  } else {
    auto colon = rest.rfind(':');
    host = colon == std::string::npos ? rest : rest.substr(0, colon);
    if (colon != std::string::npos) port = rest.substr(colon + 1);
  }
  if (host.empty() || host == "[]") throw bad("names no host");
  int number = kDefaultPort;
  if (!port.empty()) {
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c); })) {
      throw bad("has a port that is not a number in 1-65535");
    }
    number = std::stoi(port);
    if (number < 1 || number > 65535) throw bad("has a port that is not a number in 1-65535");
  }
  return Target{host + ":" + std::to_string(number), scheme == "grpcs"};
}

// ------------------------------------------------------------------------------------ Client

struct Client::Impl {
  std::shared_ptr<Connection> conn;
  std::mutex mu;
  std::shared_ptr<Writer> writer;  // started by the first StartRun
  bool closed = false;
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Client::~Client() { Close(impl_->conn->options.close_timeout); }

static std::string Getenv(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

std::unique_ptr<Client> Client::Dial(const std::string& uri, Options options) {
  Target target = ParseUri(uri);
  if (options.token.empty()) options.token = Getenv("MODELBOX_TOKEN");
  if (options.ca_file.empty()) options.ca_file = Getenv("MODELBOX_TLS_CA");
  if (options.batch_points == 0) options.batch_points = 10000;
  options.batch_points = std::min<size_t>(options.batch_points, 1000000);
  if (options.max_pending == 0) options.max_pending = 2000000;
  if (!options.warn) options.warn = [](const std::string& message) { std::cerr << "modelbox: " << message << std::endl; };

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(internal::kMaxMessageBytes);
  args.SetMaxSendMessageSize(internal::kMaxMessageBytes);
  // A restarted server is found again within a second, not after gRPC's 2-minute backoff.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);  // retries are ours: same batch id, counted

  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (target.tls) {
    grpc::SslCredentialsOptions ssl;
    if (!options.ca_file.empty()) {
      std::ifstream in(options.ca_file, std::ios::binary);
      if (!in) throw Error(grpc::StatusCode::INVALID_ARGUMENT, "cannot read the CA file " + options.ca_file);
      ssl.pem_root_certs.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    credentials = grpc::SslCredentials(ssl);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }

  auto conn = std::make_shared<Connection>();
  conn->target = target.address;
  if (!options.token.empty()) conn->authorization = "Bearer " + options.token;
  if (options.interceptors.empty()) {
    conn->channel = grpc::CreateCustomChannel(target.address, credentials, args);
  } else {
    std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> factories;
    for (const auto& make : options.interceptors) factories.push_back(make());
    conn->channel = grpc::experimental::CreateCustomChannelWithInterceptors(target.address, credentials, args,
                                                                            std::move(factories));
  }
  conn->stub = v1::ModelBox::NewStub(conn->channel);
  conn->options = std::move(options);
  auto impl = std::make_unique<Impl>();
  impl->conn = std::move(conn);
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

const std::string& Client::target() const { return impl_->conn->target; }

std::shared_ptr<Run> Client::StartRun(const RunOptions& options) {
  std::shared_ptr<Writer> writer;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->closed) throw Error(grpc::StatusCode::FAILED_PRECONDITION, "StartRun on a closed client");
    if (!impl_->writer) impl_->writer = std::make_shared<Writer>(impl_->conn);
    writer = impl_->writer;
  }
  std::string experiment = options.experiment.empty() ? "default" : options.experiment;
  if (!internal::ValidName(experiment, false) || !internal::ValidName(options.name, true)) {
    throw Error(grpc::StatusCode::INVALID_ARGUMENT, "experiment or run name is empty, too long or contains a NUL byte");
  }
  std::string id = options.id.empty() ? internal::NewId() : options.id;
  if (!internal::ValidId(id) || (!options.parent_run_id.empty() && !internal::ValidId(options.parent_run_id))) {
    throw Error(grpc::StatusCode::INVALID_ARGUMENT, "run id or parent run id is not 1-128 of A-Z a-z 0-9 . _ : -");
  }
  v1::RunStart start;
  start.set_run_id(id);
  start.set_experiment(experiment);
  if (!options.name.empty()) start.set_name(options.name);
  start.set_start_time(internal::Now());
  if (!options.parent_run_id.empty()) start.set_parent_run_id(options.parent_run_id);
  for (const auto& [key, value] : options.tags) {
    if (!internal::ValidName(key, false) || !internal::ValidName(value, true)) {
      throw Error(grpc::StatusCode::INVALID_ARGUMENT, "tag '" + key + "' is empty, too long or contains a NUL byte");
    }
    (*start.mutable_tags())[key] = value;
  }
  uint32_t index = writer->RegisterRun(id);
  writer->Add([&](Batch& b) { b.starts.push_back(std::move(start)); });
  return std::make_shared<Run>(id, index, writer);
}

Stats Client::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->writer ? impl_->writer->GetStats() : Stats{};
}

bool Client::Close(std::chrono::milliseconds timeout) {
  std::shared_ptr<Writer> writer;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->closed = true;
    writer = impl_->writer;
  }
  return writer ? writer->Close(timeout) : true;
}

// ------------------------------------------------------------------------------------ reads

#define MODELBOX_CALL(method, request, response)                       \
  do {                                                                \
    grpc::ClientContext context;                                      \
    impl_->conn->Prepare(context, impl_->conn->options.call_timeout); \
    grpc::Status status = impl_->conn->stub->method(&context, request, &response); \
    if (!status.ok()) throw internal::ToError(status, impl_->conn->target); \
  } while (0)

std::vector<Experiment> Client::Experiments() {
  v1::ListExperimentsResponse response;
  MODELBOX_CALL(ListExperiments, v1::ListExperimentsRequest(), response);
  std::vector<Experiment> out;
  for (const auto& e : response.experiments()) out.push_back({e.id(), e.name(), e.created_at()});
  return out;
}

static RunInfo ToRunInfo(const v1::RunInfo& r) {
  RunInfo info;
  info.id = r.id();
  info.experiment_id = r.experiment_id();
  info.experiment = r.experiment();
  info.name = r.name();
  info.status = r.status();
  info.start_time = r.start_time();
  if (r.has_end_time()) info.end_time = r.end_time();
  if (r.has_progress()) info.progress = r.progress();
  info.parent_run_id = r.parent_run_id();
  info.params_json.insert(r.params_json().begin(), r.params_json().end());
  info.tags.insert(r.tags().begin(), r.tags().end());
  info.env_json = r.env_json();
  return info;
}

std::vector<RunInfo> Client::Runs(const RunsQuery& query) {
  v1::ListRunsRequest request;
  if (!query.experiment.empty()) request.set_experiment(query.experiment);
  if (!query.status.empty()) request.set_status(query.status);
  request.set_limit(query.limit);
  v1::ListRunsResponse response;
  MODELBOX_CALL(ListRuns, request, response);
  std::vector<RunInfo> out;
  for (const auto& r : response.runs()) out.push_back(ToRunInfo(r));
  return out;
}

RunInfo Client::GetRun(const std::string& run_id) {
  v1::GetRunRequest request;
  request.set_run_id(run_id);
  v1::RunInfo response;
  MODELBOX_CALL(GetRun, request, response);
  return ToRunInfo(response);
}

std::vector<std::string> Client::MetricKeys(const std::string& run_id) {
  v1::RunRequest request;
  request.set_run_id(run_id);
  v1::ListMetricKeysResponse response;
  MODELBOX_CALL(ListMetricKeys, request, response);
  return {response.keys().begin(), response.keys().end()};
}

std::vector<MetricPoint> Client::Metrics(const std::string& run_id, const std::string& key) {
  v1::GetMetricsRequest request;
  request.set_run_id(run_id);
  request.set_key(key);
  grpc::ClientContext context;
  impl_->conn->Prepare(context, impl_->conn->options.call_timeout);
  auto reader = impl_->conn->stub->GetMetrics(&context, request);
  std::vector<MetricPoint> out;
  v1::MetricPage page;
  while (reader->Read(&page)) {
    const int n = page.steps_size();
    if (page.values_size() != n || page.timestamps_size() != n || (page.epochs_size() != 0 && page.epochs_size() != n)) {
      context.TryCancel();
      reader->Finish();
      throw Error(grpc::StatusCode::INTERNAL, "metric page columns have different lengths");
    }
    const size_t start = out.size();
    for (int i = 0; i < n; ++i) {
      MetricPoint p{page.steps(i), page.values(i), page.timestamps(i), std::nullopt};
      if (page.epochs_size() == n) p.epoch = page.epochs(i);
      out.push_back(p);
    }
    for (uint32_t i : page.no_epoch()) {
      if (i < static_cast<uint32_t>(n)) out[start + i].epoch.reset();
    }
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) throw internal::ToError(status, impl_->conn->target);
  return out;
}

std::vector<EventInfo> Client::Events(const std::string& run_id, const std::string& name) {
  v1::ListEventsRequest request;
  request.set_run_id(run_id);
  if (!name.empty()) request.set_name(name);
  v1::ListEventsResponse response;
  MODELBOX_CALL(ListEvents, request, response);
  std::vector<EventInfo> out;
  for (const auto& e : response.events()) {
    EventInfo info{e.name(), e.timestamp(), std::nullopt, e.attrs_json()};
    if (e.has_duration_s()) info.duration_s = e.duration_s();
    out.push_back(std::move(info));
  }
  return out;
}

static Model ToModel(const v1::ModelInfo& m) {
  Model model;
  model.id = m.id();
  model.name = m.name();
  model.version = m.version();
  model.framework = m.framework();
  model.run_id = m.run_id();
  model.experiment_id = m.experiment_id();
  for (const auto& f : m.files()) {
    model.files.push_back({f.name(), f.path(), f.has_bytes() ? static_cast<int64_t>(f.bytes()) : -1, f.sha256()});
  }
  model.metadata_json = m.metadata_json();
  model.labels.insert(m.labels().begin(), m.labels().end());
  model.datasets.assign(m.datasets().begin(), m.datasets().end());
  model.status = m.status();
  model.created_at = m.created_at();
  return model;
}

std::vector<Model> Client::Models(const ModelsQuery& query) {
  v1::ListModelsRequest request;
  if (!query.name.empty()) request.set_name(query.name);
  if (!query.run_id.empty()) request.set_run_id(query.run_id);
  for (const auto& [key, value] : query.labels) (*request.mutable_labels())[key] = value;
  v1::ListModelsResponse response;
  MODELBOX_CALL(ListModels, request, response);
  std::vector<Model> out;
  for (const auto& m : response.models()) out.push_back(ToModel(m));
  return out;
}

Model Client::GetModel(const std::string& ref) {
  v1::GetModelRequest request;
  request.set_model_id(ref);  // resolved by the server: see the header
  v1::ModelInfo response;
  MODELBOX_CALL(GetModel, request, response);
  return ToModel(response);
}

// ------------------------------------------------------------------------------------ files

std::pair<uint64_t, std::string> Client::Download(const std::string& path, std::ostream& out) {
  v1::DownloadRequest request;
  request.set_path(path);
  grpc::ClientContext context;
  impl_->conn->Prepare(context, std::chrono::milliseconds(0));  // no deadline: a large file takes its time
  auto reader = impl_->conn->stub->Download(&context, request);
  internal::Sha256 digest;
  uint64_t bytes = 0;
  v1::DownloadChunk chunk;
  while (reader->Read(&chunk)) {
    digest.Update(chunk.data().data(), chunk.data().size());
    out.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
    bytes += chunk.data().size();
    if (!out) {
      context.TryCancel();
      reader->Finish();
      throw Error(grpc::StatusCode::INTERNAL, "cannot write " + path + " to the output stream");
    }
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) throw internal::ToError(status, impl_->conn->target);
  return {bytes, digest.HexDigest()};
}

std::string Client::WriteModelFile(const ModelFile& file, std::ostream& out) {
  auto [bytes, sha256] = Download(file.path, out);
  if ((file.bytes >= 0 && bytes != static_cast<uint64_t>(file.bytes)) || (!file.sha256.empty() && sha256 != file.sha256)) {
    throw Error(grpc::StatusCode::DATA_LOSS, file.name + ": received " + std::to_string(bytes) + " bytes with sha256 " +
                                                 sha256 + "; the server recorded " + std::to_string(file.bytes) +
                                                 " bytes with sha256 " + file.sha256);
  }
  return sha256;
}

// A relative file name joined to dir; refuses names that would leave it.
static fs::path Inside(const fs::path& dir, const std::string& name) {
  fs::path rel = fs::path(name).lexically_normal();
  if (name.empty() || rel.is_absolute() || rel.empty() || *rel.begin() == ".." || rel == ".") {
    throw Error(grpc::StatusCode::INVALID_ARGUMENT, "file name '" + name + "' would leave the download folder");
  }
  return dir / rel;
}

static std::string SafeFolderName(std::string name) {
  for (char& c : name) {
    if (c == '/' || c == '\\' || c == '\0') c = '_';
  }
  if (name.find_first_not_of('.') == std::string::npos) return "model";
  return name;
}

DownloadedModel Client::DownloadModel(const std::string& ref, const std::string& dest_dir) {
  DownloadedModel result;
  result.model = GetModel(ref);
  const Model& model = result.model;
  fs::path dir = fs::path(dest_dir) / SafeFolderName(model.name + "-v" + std::to_string(model.version));
  result.dir = dir.string();
  for (const ModelFile& file : model.files) {
    if (file.bytes < 0 || file.path.empty()) {
      throw Error(grpc::StatusCode::NOT_FOUND, "model " + model.id + " file '" + file.name +
                                                   "' was never stored (its source was missing when logged)");
    }
    fs::path dest = Inside(dir, file.name);
    fs::create_directories(dest.parent_path());
    fs::path part = dest.parent_path() / ("." + dest.filename().string() + ".part-" + internal::NewId().substr(0, 8));
    std::string sha256;
    try {
      std::ofstream out(part, std::ios::binary | std::ios::trunc);
      if (!out) throw Error(grpc::StatusCode::INTERNAL, "cannot create " + part.string());
      sha256 = WriteModelFile(file, out);
      out.close();
      if (!out) throw Error(grpc::StatusCode::INTERNAL, "cannot write " + part.string());
      fs::rename(part, dest);
    } catch (...) {
      std::error_code ignored;
      fs::remove(part, ignored);
      throw;
    }
    result.files.push_back({file.name, dest.string(), static_cast<uint64_t>(file.bytes), sha256});
  }
  return result;
}

// ------------------------------------------------------------------------------------ changes

std::vector<ChangeEvent> Client::Changes(uint64_t since, uint32_t limit, uint64_t* last_seq) {
  v1::ListChangesRequest request;
  request.set_since(since);
  request.set_limit(limit);
  v1::ListChangesResponse response;
  MODELBOX_CALL(ListChanges, request, response);
  if (last_seq) *last_seq = response.last_seq();
  std::vector<ChangeEvent> out;
  for (const auto& c : response.changes()) {
    out.push_back({c.seq(), c.kind(), c.object_type(), c.object_id(), c.payload_json().empty() ? "{}" : c.payload_json(),
                   c.actor()});
  }
  return out;
}

uint64_t Client::LastChangeSeq() {
  uint64_t last = 0;
  Changes(0, 0, &last);
  return last;
}

bool Client::Watch(uint64_t since, const std::function<bool(const ChangeEvent&)>& fn,
                   std::chrono::system_clock::time_point deadline) {
  uint64_t seq = since;
  auto delay = std::chrono::milliseconds(100);
  for (;;) {
    if (std::chrono::system_clock::now() >= deadline) return false;
    grpc::ClientContext context;
    impl_->conn->Prepare(context, std::chrono::milliseconds(0));
    context.set_wait_for_ready(true);  // while the server is away, wait for it to come back
    if (deadline != std::chrono::system_clock::time_point::max()) context.set_deadline(deadline);
    v1::WatchRequest request;
    request.set_since(seq);
    auto reader = impl_->conn->stub->Watch(&context, request);
    v1::ChangeEvent message;
    bool stop = false;
    while (!stop && reader->Read(&message)) {
      delay = std::chrono::milliseconds(100);
      if (message.seq() <= seq) continue;  // delivered before a reconnect
      seq = message.seq();
      ChangeEvent event{message.seq(), message.kind(), message.object_type(), message.object_id(),
                        message.payload_json().empty() ? "{}" : message.payload_json(), message.actor()};
      stop = !fn(event);
    }
    if (stop) {
      context.TryCancel();
      reader->Finish();
      return true;
    }
    grpc::Status status = reader->Finish();
    if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && std::chrono::system_clock::now() >= deadline) {
      return false;
    }
    if (!status.ok() && !internal::Retryable(status.error_code())) throw internal::ToError(status, impl_->conn->target);
    // The stream ended (server restart or shutdown): resume after the last event seen.
    std::this_thread::sleep_for(delay);
    delay = std::min(delay * 2, std::chrono::milliseconds(2000));
  }
}

}  // namespace modelbox
