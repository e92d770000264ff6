// Batched logging: Run's calls append to memory; one thread per client sends batches in
// order, retrying transient failures with the same batch id (at most once on the server).
#include "writer.h"

#include <unistd.h>

#include <algorithm>
#include <random>

#include "internal.h"

namespace modelbox {

using Clock = std::chrono::steady_clock;

Writer::Writer(std::shared_ptr<internal::Connection> conn) : conn_(std::move(conn)) {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  writer_name_ = std::string("cpp:") + host + ":" + std::to_string(getpid());
  current_ = NewBatch();
  thread_ = std::thread([this] { Loop(); });
}

Writer::~Writer() { Close(std::chrono::milliseconds(0)); }

std::unique_ptr<Batch> Writer::NewBatch() {
  auto batch = std::make_unique<Batch>();
  if (!spare_.empty()) {
    batch->points = std::move(spare_.back());
    spare_.pop_back();
    batch->points.clear();
  } else {
    batch->points.reserve(conn_->options.batch_points);
  }
  return batch;
}

uint32_t Writer::RegisterRun(const std::string& run_id) {
  std::lock_guard<std::mutex> lock(mu_);
  run_ids_.push_back(run_id);
  return static_cast<uint32_t>(run_ids_.size() - 1);
}

bool Writer::AdmitLocked() {
  if (closing_) {
    DropLocked("logged after the client was closed", 1);
    return false;
  }
  if (pending_ >= conn_->options.max_pending) {
    DropLocked("more than " + std::to_string(conn_->options.max_pending) +
                   " records waiting for the server (Options::max_pending)",
               1);
    return false;
  }
  if (current_->records == 0) current_->since = Clock::now();
  ++current_->records;
  ++pending_;
  current_->last_seq = ++logged_;
  return true;
}

void Writer::DropLocked(const std::string& reason, uint64_t count) {
  if (count == 0) return;
  dropped_ += count;
  if (reasons_.find(reason) == reasons_.end()) conn_->options.warn("dropping records: " + reason);
  reasons_[reason] += count;
}

void Writer::Drop(const std::string& reason, uint64_t count) {
  std::lock_guard<std::mutex> lock(mu_);
  DropLocked(reason, count);
  progress_.notify_all();
}

void Writer::SealLocked() {
  if (current_->records == 0) return;
  sealed_.push_back(std::move(current_));
  current_ = NewBatch();
}

void Writer::AddPoint(Point point, std::string_view key) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!AdmitLocked()) return;
  auto found = key_index_.find(std::string(key));
  if (found == key_index_.end()) {
    keys_.emplace_back(key);
    found = key_index_.emplace(keys_.back(), static_cast<uint32_t>(keys_.size() - 1)).first;
  }
  point.key = found->second;
  current_->points.push_back(point);
  if (current_->points.size() >= conn_->options.batch_points) {
    SealLocked();
    lock.unlock();
    wake_.notify_one();
  }
}

void Writer::Add(const std::function<void(Batch&)>& put) {
  std::lock_guard<std::mutex> lock(mu_);
  if (AdmitLocked()) put(*current_);
}

void Writer::Loop() {
  const auto interval = conn_->options.flush_interval;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (sealed_.empty() && current_->records > 0) {
      auto age = Clock::now() - current_->since;
      if (flush_wanted_ || closing_ || age >= interval) SealLocked();
    }
    flush_wanted_ = false;
    if (!sealed_.empty()) {
      auto batch = std::move(sealed_.front());
      sealed_.pop_front();
      lock.unlock();
      Send(std::move(batch));
      lock.lock();
      continue;
    }
    if (closing_) break;
    auto wait = interval;
    if (current_->records > 0) {
      wait = std::chrono::duration_cast<std::chrono::milliseconds>(interval - (Clock::now() - current_->since));
      if (wait.count() < 1) wait = std::chrono::milliseconds(1);
    }
    wake_.wait_for(lock, wait);
  }
  stopped_ = true;
  progress_.notify_all();
}

void Writer::Send(std::unique_ptr<Batch> batch) {
  v1::WriteBatchRequest request;
  request.set_batch_id(internal::NewId());
  request.set_writer(writer_name_);
  request.set_created_at(internal::Now());
  auto invalid = Encode(*batch, request);
  bool stored = false, duplicate = false;
  std::string reason;
  std::mt19937 rng(std::random_device{}());
  auto delay = std::chrono::milliseconds(100);
  for (int attempt = 0;; ++attempt) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (abandon_) {
        reason = "not stored before the client's Close deadline";
        break;
      }
    }
    grpc::ClientContext context;
    conn_->Prepare(context, conn_->options.write_timeout);
    // Wait for ready: while the server is away the call waits for the channel to reconnect
    // (within a second of the server's return) instead of failing at once.
    context.set_wait_for_ready(true);
    v1::WriteBatchResponse response;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (abandon_) continue;  // the loop's top gives up
      in_flight_ = &context;
    }
    grpc::Status status = conn_->stub->WriteBatch(&context, request, &response);
    {
      std::lock_guard<std::mutex> lock(mu_);
      in_flight_ = nullptr;
    }
    if (status.ok()) {
      stored = true;
      duplicate = response.duplicate();
      break;
    }
    Error error = internal::ToError(status, conn_->target);
    {
      std::lock_guard<std::mutex> lock(mu_);
      last_error_ = error.what();
    }
    if (!internal::Retryable(status.error_code())) {
      reason = status.error_code() == grpc::StatusCode::UNAUTHENTICATED
                   ? "the server refused the token (Options::token / MODELBOX_TOKEN)"
                   : std::string("the server refused a batch: ") + error.what();
      conn_->WarnOnce("refused:" + std::to_string(status.error_code()), error.what());
      break;
    }
    if (attempt == 0) conn_->WarnOnce("retrying", std::string(error.what()) + "; retrying (records wait in memory)");
    std::unique_lock<std::mutex> lock(mu_);
    ++retries_;
    std::uniform_real_distribution<double> jitter(0.5, 1.5);
    auto pause = std::chrono::milliseconds(static_cast<int64_t>(delay.count() * jitter(rng)));
    progress_.wait_for(lock, pause, [this] { return abandon_; });
    delay = std::min(delay * 2, std::chrono::milliseconds(5000));
  }

  std::lock_guard<std::mutex> lock(mu_);
  uint64_t bad = 0;
  for (const auto& [why, count] : invalid) {
    DropLocked(why, count);
    bad += count;
  }
  if (stored) {
    stored_ += batch->records - bad;
    ++batches_;
    if (duplicate) ++duplicates_;
  } else {
    DropLocked(reason, batch->records - bad);
  }
  pending_ -= batch->records;
  done_ = batch->last_seq;
  if (batch->points.capacity() <= 2 * conn_->options.batch_points && spare_.size() < 4) {
    spare_.push_back(std::move(batch->points));
  }
  progress_.notify_all();
}

std::map<std::string, uint64_t> Writer::Encode(const Batch& batch, v1::WriteBatchRequest& request) {
  for (const auto& start : batch.starts) *request.add_run_starts() = start;
  for (const auto& param : batch.params) *request.add_params() = param;
  for (const auto& event : batch.events) *request.add_events() = event;
  for (const auto& update : batch.updates) *request.add_run_updates() = update;
  std::map<std::string, uint64_t> invalid;
  if (batch.points.empty()) return invalid;
  std::vector<std::string> run_ids, keys;
  {
    std::lock_guard<std::mutex> lock(mu_);  // the tables only grow: copy what this batch can use
    run_ids = run_ids_;
    keys = keys_;
  }
  auto* cols = request.mutable_metrics();
  const int n = static_cast<int>(batch.points.size());
  cols->mutable_run_index()->Reserve(n);
  cols->mutable_key_index()->Reserve(n);
  cols->mutable_values()->Reserve(n);
  cols->mutable_steps()->Reserve(n);
  cols->mutable_timestamps()->Reserve(n);
  std::unordered_map<uint32_t, uint32_t> runs;
  std::unordered_map<uint32_t, int64_t> key_map;  // -1: a key the server would refuse
  bool has_epoch = false;
  for (const Point& p : batch.points) {
    auto k = key_map.find(p.key);
    if (k == key_map.end()) {
      int64_t index = -1;
      if (internal::ValidName(keys[p.key], false)) {
        index = cols->keys_size();
        cols->add_keys(keys[p.key]);
      }
      k = key_map.emplace(p.key, index).first;
    }
    if (k->second < 0) {
      ++invalid["metric key is empty, longer than 4096 bytes, not UTF-8 or contains a NUL byte"];
      continue;
    }
    auto r = runs.find(p.run);
    if (r == runs.end()) {
      r = runs.emplace(p.run, static_cast<uint32_t>(cols->run_ids_size())).first;
      cols->add_run_ids(run_ids[p.run]);
    }
    cols->add_run_index(r->second);
    cols->add_key_index(static_cast<uint32_t>(k->second));
    cols->add_values(p.value);
    cols->add_steps(p.step);
    cols->add_timestamps(p.timestamp);
    has_epoch = has_epoch || p.has_epoch;
  }
  if (has_epoch) {
    for (const Point& p : batch.points) {
      if (key_map[p.key] < 0) continue;
      if (!p.has_epoch) cols->add_no_epoch(static_cast<uint32_t>(cols->epochs_size()));
      cols->add_epochs(p.epoch);
    }
  }
  if (cols->values_size() == 0) request.clear_metrics();
  return invalid;
}

bool Writer::Flush(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t target = logged_, dropped_before = dropped_;
  flush_wanted_ = true;
  wake_.notify_one();
  bool reached = progress_.wait_for(lock, timeout, [&] { return done_ >= target || stopped_; });
  return reached && done_ >= target && dropped_ == dropped_before;
}

bool Writer::Close(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (close_started_) {  // closed already, or closing in another thread
    progress_.wait(lock, [this] { return stopped_; });
    return true;
  }
  close_started_ = true;
  const uint64_t dropped_before = dropped_;
  closing_ = true;
  wake_.notify_one();
  if (!progress_.wait_for(lock, timeout, [this] { return stopped_; })) {
    abandon_ = true;
    if (in_flight_) in_flight_->TryCancel();
    progress_.notify_all();
    progress_.wait(lock, [this] { return stopped_; });
  }
  lock.unlock();
  thread_.join();
  lock.lock();
  return dropped_ == dropped_before;
}

Stats Writer::GetStats() const {
  std::lock_guard<std::mutex> lock(mu_);
  Stats s;
  s.logged = logged_;
  s.stored = stored_;
  s.dropped = dropped_;
  s.drop_reasons = reasons_;
  s.pending = pending_;
  s.batches = batches_;
  s.duplicates = duplicates_;
  s.retries = retries_;
  s.last_error = last_error_;
  return s;
}

// ------------------------------------------------------------------------------------ Run

Run::Run(std::string id, uint32_t index, std::shared_ptr<Writer> writer)
    : id_(std::move(id)), index_(index), writer_(std::move(writer)) {}

void Run::LogMetric(std::string_view key, double value, int64_t step) {
  writer_->AddPoint(Point{index_, 0, value, step, internal::Now(), 0, false}, key);
}

void Run::LogMetric(std::string_view key, double value, int64_t step, int64_t epoch) {
  writer_->AddPoint(Point{index_, 0, value, step, internal::Now(), epoch, true}, key);
}

void Run::LogParam(std::string_view key, const Value& value) {
  if (!internal::ValidName(key, false)) return writer_->Drop("param key is empty, too long or contains a NUL byte", 1);
  if (value.json().size() > internal::kMaxTextChars) return writer_->Drop("param value is larger than 16 MiB as JSON", 1);
  v1::Param param;
  param.set_run_id(id_);
  param.set_key(std::string(key));
  param.set_value_json(value.json());
  writer_->Add([&](Batch& b) { b.params.push_back(std::move(param)); });
}

void Run::LogEvent(std::string_view name, const Attributes& attrs) {
  if (!internal::ValidName(name, false)) return writer_->Drop("event name is empty, too long or contains a NUL byte", 1);
  v1::Event event;
  event.set_id(internal::NewId());
  event.set_run_id(id_);
  event.set_name(std::string(name));
  event.set_timestamp(internal::Now());
  event.set_attrs_json(internal::AttrsJson(attrs));
  writer_->Add([&](Batch& b) { b.events.push_back(std::move(event)); });
}

void Run::LogTimedEvent(std::string_view name, double start, double duration_s, const Attributes& attrs) {
  if (!internal::ValidName(name, false)) return writer_->Drop("event name is empty, too long or contains a NUL byte", 1);
  v1::Event event;
  event.set_id(internal::NewId());
  event.set_run_id(id_);
  event.set_name(std::string(name));
  event.set_timestamp(start);
  event.set_duration_s(duration_s);
  event.set_attrs_json(internal::AttrsJson(attrs));
  writer_->Add([&](Batch& b) { b.events.push_back(std::move(event)); });
}

void Run::SetProgress(double fraction) {
  v1::RunUpdate update;
  update.set_run_id(id_);
  update.set_progress(std::clamp(fraction, 0.0, 1.0));
  writer_->Add([&](Batch& b) { b.updates.push_back(std::move(update)); });
}

void Run::SetTags(const std::map<std::string, std::string>& tags) {
  v1::RunUpdate update;
  update.set_run_id(id_);
  for (const auto& [key, value] : tags) {
    if (!internal::ValidName(key, false) || !internal::ValidName(value, true)) {
      return writer_->Drop("tag key or value is empty, too long or contains a NUL byte", 1);
    }
    (*update.mutable_tags())[key] = value;
  }
  writer_->Add([&](Batch& b) { b.updates.push_back(std::move(update)); });
}

bool Run::Flush(std::chrono::milliseconds timeout) { return writer_->Flush(timeout); }

bool Run::End(std::string_view status) {
  if (status != kFinished && status != kFailed && status != kKilled) {
    writer_->Drop("run status is not one of finished, failed, killed", 1);
    return false;
  }
  if (ended_.exchange(true)) return true;
  v1::RunUpdate update;
  update.set_run_id(id_);
  update.set_status(std::string(status));
  update.set_end_time(internal::Now());
  writer_->Add([&](Batch& b) { b.updates.push_back(std::move(update)); });
  return writer_->Flush(writer_->close_timeout());
}

}  // namespace modelbox
