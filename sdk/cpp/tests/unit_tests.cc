// Unit tests of the C++ SDK's pure parts (no server): URI parsing, JSON text, names, sha256.
#include <cmath>
#include <iostream>
#include <sstream>
#include <string>

#include "internal.h"
#include "modelbox/modelbox.h"

static int failures = 0;

#define EXPECT(cond)                                                          \
  do {                                                                        \
    if (!(cond)) {                                                            \
      ++failures;                                                             \
      std::cerr << __FILE__ << ":" << __LINE__ << ": failed: " #cond << "\n"; \
    }                                                                         \
  } while (0)

static bool Refused(const std::string& uri) {
  try {
    modelbox::ParseUri(uri);
  } catch (const modelbox::Error& e) {
    return e.code() == grpc::StatusCode::INVALID_ARGUMENT;
  }
  return false;
}

int main() {
  using namespace modelbox;
  auto t = ParseUri("grpc://127.0.0.1:6000");
  EXPECT(t.address == "127.0.0.1:6000" && !t.tls);
  t = ParseUri("GRPCS://models.example");
  EXPECT(t.address == "models.example:50051" && t.tls);
  t = ParseUri("grpc://[::1]:7000/");
  EXPECT(t.address == "[::1]:7000");
  EXPECT(Refused("http://host:1"));
  EXPECT(Refused("grpc://host:1/path"));
  EXPECT(Refused("grpc://host:99999"));
  EXPECT(Refused("grpc://:5000"));
  EXPECT(Refused("grpc://user@host:5000"));

  EXPECT(internal::ValidId("0f3a") && internal::ValidId("run.1_x:y-z"));
  EXPECT(!internal::ValidId("") && !internal::ValidId("-a") && !internal::ValidId("a/b"));
  auto id = internal::NewId();
  EXPECT(id.size() == 32 && internal::ValidId(id) && id != internal::NewId());
  EXPECT(internal::ValidName("loss", false) && !internal::ValidName("", false) && internal::ValidName("", true));
  EXPECT(!internal::ValidName(std::string("a\0b", 3), false));
  EXPECT(internal::ValidName("\xc3\xa9t\xc3\xa9", false));  // été
  EXPECT(!internal::ValidName("\xc3", false));               // cut UTF-8

  EXPECT(Value(0.001).json() == "0.001");
  EXPECT(Value(2.0).json() == "2.0");
  EXPECT(Value(std::nan("")).json() == "NaN");
  EXPECT(Value(-INFINITY).json() == "-Infinity");
  EXPECT(Value(42).json() == "42");
  EXPECT(Value(true).json() == "true");
  EXPECT(Value("a\"b\n").json() == "\"a\\\"b\\n\"");
  EXPECT(Value(std::string("x")).json() == "\"x\"");
  EXPECT(internal::AttrsJson({{"b", 1}, {"a", "x"}}) == "{\"a\":\"x\",\"b\":1}");
  EXPECT(internal::AttrsJson({}).empty());

  internal::Sha256 digest;
  digest.Update("abc", 3);
  EXPECT(digest.HexDigest() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

  if (failures) {
    std::cerr << failures << " failed\n";
    return 1;
  }
  std::cout << "unit tests passed\n";
  return 0;
}
