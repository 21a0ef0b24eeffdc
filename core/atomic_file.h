// Writing a file so that a reader, a crash or a kill sees its old content or its new, never a
// part: the bytes go to a temporary PATH.tmp-HOST-PID beside it (same directory, so the same
// file system), which is flushed to disk (fsync), renamed over PATH, and the directory is
// flushed too, so the rename itself survives a power cut. The one writer every command uses
// (checkpoints, run files, exported models, reports). Temporaries that writers on this host left
// when they were killed (their process is gone) are removed before each write; a live writer's,
// or another host's, are left alone. Torch-free; safe from several threads on distinct paths.
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

namespace cdmoe {

// `write` puts the content into the open temporary file and returns whether it succeeded. A
// temporary that cannot be created is bad input naming the directory; a failed write, flush or
// rename is a runtime error (disk full?); either way no temporary is left behind.
void write_file_atomically(const std::string& path, const std::function<bool(std::FILE*)>& write);
void write_file_atomically(const std::string& path, std::string_view contents);

// The temporary name this process uses for `path` (PATH.tmp-HOST-PID), e.g. for a directory
// staged before a rename.
std::string temporary_path(const std::string& path);

// Removes temporaries of `path` (files or directories) whose writer was this host's and is gone.
// Returns how many it removed.
int remove_stale_temporaries(const std::string& path);

}  // namespace cdmoe
