#include "sluice/remote/cluster/multipart.hpp"

#include "sluice/remote/errors.hpp"

#include <doctest/doctest.h>

using namespace sluice::remote;
using namespace sluice::remote::cluster;

TEST_SUITE("remote.cluster.multipart") {

TEST_CASE("a file encoded as a form comes back with its name and bytes") {
  form_file in{"jarfile", "job.so", std::string("\x7f" "ELF\r\n--x\0bin", 12)};
  std::string type;
  auto body = encode_form_file(in, type);
  auto out = parse_form_file(type, body, "jarfile");
  REQUIRE(out);
  CHECK(out->file_name == "job.so");
  CHECK(out->bytes == in.bytes);
}

TEST_CASE("the file is found among other fields, quoted boundary and all") {
  std::string body = "--b1\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n"
                     "--b1\r\nContent-Disposition: form-data; name=\"jarfile\"; "
                     "filename=\"w.so\"\r\nContent-Type: application/x-java-archive\r\n\r\n"
                     "DATA\r\n--b1--\r\n";
  auto out = parse_form_file("multipart/form-data; boundary=\"b1\"", body, "jarfile");
  REQUIRE(out);
  CHECK(out->file_name == "w.so");
  CHECK(out->bytes == "DATA");
}

TEST_CASE("uploads that are not a form with the field are refused with the reason") {
  CHECK(describe(parse_form_file("application/json", "{}", "jarfile").error())
          .find("multipart/form-data") != std::string::npos);
  CHECK(describe(parse_form_file("multipart/form-data", "x", "jarfile").error())
          .find("no boundary") != std::string::npos);
  std::string body = "--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--b--\r\n";
  CHECK(describe(parse_form_file("multipart/form-data; boundary=b", body, "jarfile").error())
          .find("no form field 'jarfile'") != std::string::npos);
  std::string open = "--b\r\nContent-Disposition: form-data; name=\"jarfile\"\r\n\r\n1";
  CHECK(describe(parse_form_file("multipart/form-data; boundary=b", open, "jarfile").error())
          .find("not closed") != std::string::npos);
}

}
