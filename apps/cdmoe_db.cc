// cdmoe-db: administers a results database file.
//   init  - create it, or migrate an older one to this binary's schema
//   check - full PRAGMA integrity_check (exit 0 when ok, 2 when damaged)
#include <iostream>
#include <string>

#include <boost/program_options.hpp>

#include "apps/cli.h"
#include "core/error.h"
#include "db/database.h"

namespace po = boost::program_options;
using namespace cdmoe;

namespace {

int db_main(int argc, char** argv) {
  po::options_description options(
      "usage: cdmoe-db --db FILE init|check\n\n"
      "  init   create the results database, or migrate an older one to this schema\n"
      "  check  run a full integrity check\n\noptions");
  options.add_options()("help,h", "print this help")("db", po::value<std::string>(), "results database file");
  auto parsed = parse_options(argc, argv, options, /*with_command=*/true);
  if (!parsed) return 0;
  const po::variables_map& args = *parsed;
  if (!args.count("db")) throw_bad_input("--db FILE is required (see --help)");
  std::string path = args["db"].as<std::string>();
  std::string command = args.count("command") ? args["command"].as<std::string>() : "";
  if (command == "init") {
    db::Connection connection = db::open_database(path, db::OpenMode::kReadWrite);
    std::cout << "results DB '" << path << "': schema version " << db::latest_schema_version() << "\n";
    return 0;
  }
  if (command == "check") {
    db::Connection connection = db::open_database(path, db::OpenMode::kReadOnly);
    const std::string first = db::integrity_check(connection);
    if (first != "ok") throw_bad_input("results DB '" + path + "' is damaged: " + first);
    std::cout << "results DB '" << path << "': ok\n";
    return 0;
  }
  throw_bad_input(command.empty() ? "a command is required: init or check (see --help)"
                                  : "unknown command '" + command + "' (commands: init, check)");
}

}  // namespace

int main(int argc, char** argv) {
  return run_cli("cdmoe-db", [&] { return db_main(argc, argv); });
}
