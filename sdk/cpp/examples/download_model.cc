// Downloads a logged model's files by reference and prints their sha256, as sha256sum does.
//
//   MODELBOX_TOKEN=... download_model grpc://127.0.0.1:50051 MODEL_REF [DEST]
#include <iostream>

#include "modelbox/modelbox.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: download_model URI MODEL_REF [DEST]\n";
    return 2;
  }
  try {
    auto client = modelbox::Client::Dial(argv[1]);
    auto model = client->DownloadModel(argv[2], argc > 3 ? argv[3] : ".");
    for (const auto& file : model.files) std::cout << file.sha256 << "  " << file.path << "\n";
  } catch (const modelbox::Error& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
