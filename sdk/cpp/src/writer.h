// The in-memory queue of a Client and the thread that sends it, batch by batch, in order.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "connection.h"
#include "modelbox/modelbox.h"
#include "modelbox/v1/records.pb.h"

namespace modelbox {

// One metric point; the run and the key are indexes into the writer's tables.
struct Point {
  uint32_t run;
  uint32_t key;
  double value;
  int64_t step;
  double timestamp;
  int64_t epoch;
  bool has_epoch;
};

// Records cut together into one WriteBatch request. Its id is drawn once and kept across
// every attempt: the server stores a batch id at most once, so a retry never duplicates.
struct Batch {
  std::vector<v1::RunStart> starts;
  std::vector<v1::Param> params;
  std::vector<Point> points;
  std::vector<v1::Event> events;
  std::vector<v1::RunUpdate> updates;
  uint64_t records = 0;
  uint64_t last_seq = 0;
  std::chrono::steady_clock::time_point since;
};

class Writer {
 public:
  explicit Writer(std::shared_ptr<internal::Connection> conn);
  ~Writer();

  uint32_t RegisterRun(const std::string& run_id);
  // The hot path of Run::LogMetric: a hash lookup and an append under the mutex.
  void AddPoint(Point point, std::string_view key);
  // Queues a record of another kind (run start or update, param, event).
  void Add(const std::function<void(Batch&)>& put);
  void Drop(const std::string& reason, uint64_t count);

  bool Flush(std::chrono::milliseconds timeout);
  bool Close(std::chrono::milliseconds timeout);
  Stats GetStats() const;
  std::chrono::milliseconds close_timeout() const { return conn_->options.close_timeout; }

 private:
  bool AdmitLocked();
  void DropLocked(const std::string& reason, uint64_t count);
  void SealLocked();
  std::unique_ptr<Batch> NewBatch();
  void Loop();
  void Send(std::unique_ptr<Batch> batch);
  std::map<std::string, uint64_t> Encode(const Batch& batch, v1::WriteBatchRequest& request);

  std::shared_ptr<internal::Connection> conn_;
  std::string writer_name_;

  mutable std::mutex mu_;
  std::condition_variable wake_;      // the writer thread waits on it
  std::condition_variable progress_;  // Flush and Close wait on it
  std::vector<std::string> run_ids_;
  std::vector<std::string> keys_;
  std::unordered_map<std::string, uint32_t> key_index_;
  std::unique_ptr<Batch> current_;
  std::deque<std::unique_ptr<Batch>> sealed_;
  std::vector<std::vector<Point>> spare_;  // point buffers reused once sent
  uint64_t pending_ = 0, logged_ = 0, done_ = 0, stored_ = 0, dropped_ = 0;
  uint64_t batches_ = 0, duplicates_ = 0, retries_ = 0;
  std::map<std::string, uint64_t> reasons_;
  std::string last_error_;
  bool flush_wanted_ = false, closing_ = false, abandon_ = false, stopped_ = false, close_started_ = false;
  grpc::ClientContext* in_flight_ = nullptr;  // the WriteBatch call Close may cancel
  std::thread thread_;
};

}  // namespace modelbox
