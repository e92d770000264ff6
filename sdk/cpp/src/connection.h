// One channel to a modelbox server, its stub, the token and the options; shared by the
// Client (reads) and the Writer (batched logging), which may outlive the Client through Runs.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include <grpcpp/grpcpp.h>

#include "modelbox/modelbox.h"
#include "modelbox/v1/service.grpc.pb.h"

namespace modelbox::internal {

struct Connection {
  std::string target;
  std::string authorization;  // "Bearer <token>", or empty
  Options options;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<::modelbox::v1::ModelBox::Stub> stub;

  // Token metadata and a deadline (none when timeout is zero).
  void Prepare(grpc::ClientContext& context, std::chrono::milliseconds timeout) const {
    if (!authorization.empty()) context.AddMetadata("authorization", authorization);
    if (timeout.count() > 0) context.set_deadline(std::chrono::system_clock::now() + timeout);
  }

  // Reports a problem through Options::warn, once per cause.
  void WarnOnce(const std::string& cause, const std::string& message) {
    {
      std::lock_guard<std::mutex> lock(warned_mu);
      if (!warned.insert(cause).second) return;
    }
    options.warn(message);
  }

 private:
  std::mutex warned_mu;
  std::set<std::string> warned;
};

}  // namespace modelbox::internal
