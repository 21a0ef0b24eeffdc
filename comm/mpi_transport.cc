#include "comm/mpi_transport.h"

#include "comm/mpi_check.h"

#include <climits>
#include <chrono>
#include <list>
#include <thread>

#include "core/error.h"

namespace cdmoe::comm {
namespace {


class MpiTransport : public Transport {
 public:
  MpiTransport() {
    check_mpi(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    check_mpi(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
  }
  ~MpiTransport() override { wait_for_sends(); }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void send(int destination, Tag tag, std::string payload) override {
    reap_sends(false);
    if (payload.size() > size_t(INT_MAX)) {
      throw_runtime("MPI message of " + std::to_string(payload.size()) + " bytes exceeds MPI's int count");
    }
    // The buffer must outlive the nonblocking send: it lives in `sends_` until completion.
    sends_.push_back({std::move(payload), MPI_REQUEST_NULL});
    Pending& pending = sends_.back();
    check_mpi(MPI_Isend(pending.payload.data(), int(pending.payload.size()), MPI_CHAR, destination, int(tag),
                    MPI_COMM_WORLD, &pending.request),
          "MPI_Isend");
  }

  std::optional<Message> receive(double timeout_s) override {
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(timeout_s));
    auto pause = std::chrono::microseconds(20);
    for (;;) {
      reap_sends(false);
      int flag = 0;
      MPI_Status status;
      check_mpi(MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &status), "MPI_Iprobe");
      if (flag) {
        int count = 0;
        check_mpi(MPI_Get_count(&status, MPI_CHAR, &count), "MPI_Get_count");
        Message message{status.MPI_SOURCE, Tag(status.MPI_TAG), std::string(size_t(count), '\0')};
        check_mpi(MPI_Recv(message.payload.data(), count, MPI_CHAR, status.MPI_SOURCE, status.MPI_TAG, MPI_COMM_WORLD,
                       MPI_STATUS_IGNORE),
              "MPI_Recv");
        return message;
      }
      auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return std::nullopt;
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(pause, deadline - now));

      pause = std::min(pause * 2, std::chrono::microseconds(250));
    }
  }

  void wait_for_sends() { reap_sends(true); }

 private:
  struct Pending {
    std::string payload;
    MPI_Request request;
  };
  void reap_sends(bool wait) {
    for (auto it = sends_.begin(); it != sends_.end();) {
      int done = 0;
      if (wait) {
        check_mpi(MPI_Wait(&it->request, MPI_STATUS_IGNORE), "MPI_Wait");
        done = 1;
      } else {
        check_mpi(MPI_Test(&it->request, &done, MPI_STATUS_IGNORE), "MPI_Test");
      }
      it = done ? sends_.erase(it) : std::next(it);
    }
  }

  int rank_ = 0, size_ = 1;
  std::list<Pending> sends_;  // list: elements never move while MPI holds their buffers
};

}  // namespace

MpiSession::MpiSession(int* argc, char*** argv) {
  int provided = 0;
  check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  // Errors come back as codes (and become exceptions) instead of aborting inside MPI.
  check_mpi(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  MPI_Comm node;
  check_mpi(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
  check_mpi(MPI_Comm_rank(node, &local_rank_), "MPI_Comm_rank (node)");
  check_mpi(MPI_Comm_size(node, &local_size_), "MPI_Comm_size (node)");
  check_mpi(MPI_Comm_free(&node), "MPI_Comm_free");
  transport_ = std::make_unique<MpiTransport>();
}

MpiSession::~MpiSession() {
  transport_.reset();
  MPI_Finalize();  // its code is not checked: a destructor cannot report it, and the job is ending
}

void MpiSession::abort_job(int exit_code) {
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);  // MPI_Abort does not return; this is for the compiler
}

}  // namespace cdmoe::comm
