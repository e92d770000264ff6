// modelbox_cpp drives the C++ SDK against a modelbox server: it logs synthetic metric points,
// reads a run back, downloads a model, follows the change feed, and times LogMetric. The
// project's tests and benchmarks run it; every subcommand prints JSON lines.
//
//   modelbox_cpp log      --uri grpc://127.0.0.1:50051 --points 100000 [--keys 2] [--lose-ack 2] [--rate 0]
//   modelbox_cpp read     --uri ... --run RUN_ID
//   modelbox_cpp download --uri ... --model REF --dest DIR
//   modelbox_cpp watch    --uri ... --since SEQ --count N [--timeout-s 60]
//   modelbox_cpp bench    --uri ... --points 200000
//
// The token comes from MODELBOX_TOKEN.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "modelbox/modelbox.h"

namespace {

using Flags = std::map<std::string, std::string>;

Flags Parse(int argc, char** argv) {
  Flags flags;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string name = argv[i];
    if (name.rfind("--", 0) != 0) throw std::invalid_argument("expected --flag value, got " + name);
    flags[name.substr(2)] = argv[i + 1];
  }
  return flags;
}

std::string Get(const Flags& flags, const std::string& name, const std::string& fallback) {
  auto found = flags.find(name);
  return found == flags.end() ? fallback : found->second;
}

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out + "\"";
}

std::string StatsJson(const modelbox::Stats& s) {
  std::ostringstream out;
  out << "{\"logged\":" << s.logged << ",\"stored\":" << s.stored << ",\"dropped\":" << s.dropped
      << ",\"pending\":" << s.pending << ",\"batches\":" << s.batches << ",\"duplicates\":" << s.duplicates
      << ",\"retries\":" << s.retries << ",\"last_error\":" << Quote(s.last_error) << ",\"drop_reasons\":{";
  bool first = true;
  for (const auto& [reason, count] : s.drop_reasons) {
    out << (first ? "" : ",") << Quote(reason) << ":" << count;
    first = false;
  }
  out << "}}";
  return out.str();
}

// Makes the n-th WriteBatch call look failed after the server stored it: the answer is
// "lost", so the SDK re-sends the same batch id and the server must not store it twice.
class LoseAnswer : public grpc::experimental::Interceptor {
 public:
  LoseAnswer(bool write_batch, std::atomic<int>* calls, int n) : write_batch_(write_batch), calls_(calls), n_(n) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (write_batch_ && methods->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::POST_RECV_STATUS)) {
      grpc::Status* status = methods->GetRecvStatus();
      if (status->ok() && ++*calls_ == n_) {
        *status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "answer lost on purpose (modelbox_cpp --lose-ack)");
      }
    }
    methods->Proceed();
  }

 private:
  bool write_batch_;
  std::atomic<int>* calls_;
  int n_;
};

class LoseAnswerFactory : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit LoseAnswerFactory(int n) : n_(n) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(grpc::experimental::ClientRpcInfo* info) override {
    return new LoseAnswer(std::string(info->method()) == "/modelbox.v1.ModelBox/WriteBatch", &calls_, n_);
  }

 private:
  int n_;
  std::atomic<int> calls_{0};
};

int Log(const Flags& flags) {
  const long points = std::stol(Get(flags, "points", "100000"));
  const int keys = std::stoi(Get(flags, "keys", "2"));
  const int lose_ack = std::stoi(Get(flags, "lose-ack", "0"));
  const double rate = std::stod(Get(flags, "rate", "0"));  // points per second; 0: as fast as possible
  const double close_timeout_s = std::stod(Get(flags, "close-timeout-s", "0"));  // 0: the SDK's default
  modelbox::Options options;
  if (close_timeout_s > 0) options.close_timeout = std::chrono::milliseconds(static_cast<int64_t>(close_timeout_s * 1000));
  if (lose_ack > 0) {
    options.interceptors.push_back([lose_ack] { return std::make_unique<LoseAnswerFactory>(lose_ack); });
  }
  auto client = modelbox::Client::Dial(Get(flags, "uri", "grpc://127.0.0.1:50051"), std::move(options));
  modelbox::RunOptions run_options;
  run_options.experiment = Get(flags, "experiment", "cpp-sdk");
  run_options.name = Get(flags, "name", "cpp-run");
  run_options.tags = {{"sdk", "cpp"}};
  auto run = client->StartRun(run_options);
  std::cout << "{\"run_id\":" << Quote(run->id()) << "}" << std::endl;
  run->LogParam("lr", 0.001);
  run->LogParam("optimizer.name", "adam");
  run->LogParam("optimizer.betas", modelbox::Value::Json("[0.9,0.99]"));
  run->LogParam("points", points);
  std::vector<std::string> names;
  for (int k = 0; k < keys; ++k) names.push_back("metric_" + std::to_string(k));
  const double start = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < points; ++i) {
    const int k = static_cast<int>(i % keys);
    const int64_t step = i / keys;
    run->LogMetric(names[k], static_cast<double>(step) * 0.5 + k, step, step / 1000);
    if (i % (points / 10 + 1) == 0) run->SetProgress(static_cast<double>(i) / points);
    if (rate > 0 && i % 100 == 99) {
      auto due = t0 + std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>((i + 1) / rate));
      std::this_thread::sleep_until(due);
    }
  }
  const double logging = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  run->LogTimedEvent("logging", start, logging, {{"points", points}});
  run->LogEvent("done", {{"points", points}});
  run->SetProgress(1.0);
  bool ok = run->End(modelbox::kFinished);
  ok = client->Close(std::chrono::milliseconds(0)) && ok;  // what End could not store in time is given up on, and counted
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "{\"run_id\":" << Quote(run->id()) << ",\"seconds\":" << total << ",\"ok\":" << (ok ? "true" : "false")
            << ",\"stats\":" << StatsJson(client->stats()) << "}" << std::endl;
  return ok ? 0 : 1;
}

int Read(const Flags& flags) {
  auto client = modelbox::Client::Dial(Get(flags, "uri", "grpc://127.0.0.1:50051"));
  auto info = client->GetRun(Get(flags, "run", ""));
  std::ostringstream out;
  out << "{\"id\":" << Quote(info.id) << ",\"name\":" << Quote(info.name) << ",\"status\":" << Quote(info.status)
      << ",\"experiment\":" << Quote(info.experiment) << ",\"ended\":" << (info.end_time ? "true" : "false")
      << ",\"params\":{";
  bool first = true;
  for (const auto& [key, json] : info.params_json) {
    out << (first ? "" : ",") << Quote(key) << ":" << json;
    first = false;
  }
  out << "},\"counts\":{";
  first = true;
  std::ostringstream distinct;
  for (const auto& key : client->MetricKeys(info.id)) {
    auto points = client->Metrics(info.id, key);
    std::set<int64_t> steps;
    for (const auto& p : points) steps.insert(p.step);
    out << (first ? "" : ",") << Quote(key) << ":" << points.size();
    distinct << (first ? "" : ",") << Quote(key) << ":" << steps.size();
    first = false;
  }
  out << "},\"distinct_steps\":{" << distinct.str() << "},\"events\":[";
  first = true;
  for (const auto& e : client->Events(info.id)) {
    out << (first ? "" : ",") << Quote(e.name);
    first = false;
  }
  modelbox::RunsQuery query;
  query.experiment = info.experiment;
  out << "],\"runs_in_experiment\":" << client->Runs(query).size() << ",\"models\":[";
  modelbox::ModelsQuery models;
  models.run_id = info.id;
  first = true;
  for (const auto& m : client->Models(models)) {
    out << (first ? "" : ",") << Quote(m.id);
    first = false;
  }
  out << "]}";
  std::cout << out.str() << std::endl;
  return 0;
}

int Download(const Flags& flags) {
  auto client = modelbox::Client::Dial(Get(flags, "uri", "grpc://127.0.0.1:50051"));
  auto got = client->DownloadModel(Get(flags, "model", ""), Get(flags, "dest", "."));
  for (const auto& f : got.files) {
    std::cout << "{\"model_id\":" << Quote(got.model.id) << ",\"name\":" << Quote(f.name) << ",\"path\":" << Quote(f.path)
              << ",\"bytes\":" << f.bytes << ",\"sha256\":" << Quote(f.sha256) << "}" << std::endl;
  }
  return 0;
}

int Watch(const Flags& flags) {
  auto client = modelbox::Client::Dial(Get(flags, "uri", "grpc://127.0.0.1:50051"));
  const long since = std::stol(Get(flags, "since", "-1"));
  const int count = std::stoi(Get(flags, "count", "1"));
  const double timeout_s = std::stod(Get(flags, "timeout-s", "60"));
  uint64_t from = since < 0 ? client->LastChangeSeq() : static_cast<uint64_t>(since);
  std::cout << "{\"watching_from\":" << from << "}" << std::endl;
  int seen = 0;
  auto deadline = std::chrono::system_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  bool stopped = client->Watch(
      from,
      [&](const modelbox::ChangeEvent& e) {
        std::cout << "{\"seq\":" << e.seq << ",\"kind\":" << Quote(e.kind) << ",\"object_type\":" << Quote(e.object_type)
                  << ",\"object_id\":" << Quote(e.object_id) << ",\"payload\":" << e.payload_json
                  << ",\"actor\":" << Quote(e.actor) << "}" << std::endl;
        return ++seen < count;
      },
      deadline);
  return stopped ? 0 : 1;
}

// Times LogMetric in the calling thread (the writer thread sending meanwhile): per block of
// 1,000 calls, whose median is the typical cost of a call and whose mean includes the
// occasional batch hand-over or preemption; then the whole run, until the server has stored
// every point.
int Bench(const Flags& flags) {
  const long points = std::stol(Get(flags, "points", "200000"));
  auto client = modelbox::Client::Dial(Get(flags, "uri", "grpc://127.0.0.1:50051"));
  modelbox::RunOptions run_options;
  run_options.experiment = "bench-sdks";
  run_options.name = "cpp";
  auto run = client->StartRun(run_options);
  constexpr long kBlock = 1000;
  std::vector<double> blocks;
  const auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < points;) {
    const auto b0 = std::chrono::steady_clock::now();
    const long end = std::min(points, i + kBlock);
    for (; i < end; ++i) run->LogMetric("loss", static_cast<double>(i), i);
    blocks.push_back(std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - b0).count() / kBlock);
  }
  const double logged = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const bool ok = run->End(modelbox::kFinished);
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::sort(blocks.begin(), blocks.end());
  std::cout << "{\"sdk\":\"cpp\",\"points\":" << points << ",\"log_seconds\":" << logged << ",\"total_seconds\":" << total
            << ",\"ns_per_call\":" << blocks[blocks.size() / 2] << ",\"ns_per_call_mean\":" << logged * 1e9 / points
            << ",\"points_per_s\":" << points / total << ",\"run_id\":" << Quote(run->id())
            << ",\"ok\":" << (ok ? "true" : "false") << ",\"stats\":" << StatsJson(client->stats()) << "}" << std::endl;
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: modelbox_cpp log|read|download|watch|bench [--flag value]...\n";
    return 2;
  }
  const std::map<std::string, int (*)(const Flags&)> commands = {
      {"log", Log}, {"read", Read}, {"download", Download}, {"watch", Watch}, {"bench", Bench}};
  auto command = commands.find(argv[1]);
  if (command == commands.end()) {
    std::cerr << "modelbox_cpp: unknown command " << argv[1] << "\n";
    return 2;
  }
  try {
    return command->second(Parse(argc, argv));
  } catch (const modelbox::Error& e) {
    std::cout << "{\"error\":" << Quote(e.what()) << ",\"code\":" << static_cast<int>(e.code()) << "}" << std::endl;
    std::cerr << "modelbox_cpp " << argv[1] << ": " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "modelbox_cpp " << argv[1] << ": " << e.what() << "\n";
    return 2;
  }
}
