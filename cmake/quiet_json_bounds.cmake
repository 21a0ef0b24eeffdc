# GCC 12 reports -Warray-bounds false positives inside std::map's red-black tree
# (bits/stl_tree.h, "partly outside array bounds of unsigned char[32]") wherever the
# std::map<std::string, json, std::less<void>> that holds a nlohmann::json object is inlined at
# -O3: about 200 warning lines in a first build, none about this project's code. The warning is
# turned off for exactly the translation units where it fires, so it still guards every other
# file. The list was read off a clean build's log (the files named in the warnings' "In file
# included from" lines); a new file that triggers it joins the list the same way.
set(CDMOE_JSON_BOUNDS_FALSE_POSITIVES
  apps/cdmoe_train.cc
  bench/dispatch_bench.cc bench/row_kernels_bench.cc bench/search_bench.cc bench/tokenizer_bench.cc
  coordinator/coordinator.cc coordinator/sweep_setup.cc
  core/finetune_task.cc core/json_fields.cc core/messages.cc core/plan.cc
  db/store.cc
  eval/task_samples.cc
  finetune/training_run.cc
  model/bpe_trainer.cc model/hf_export.cc model/safetensors.cc
  report/html_report.cc
  search/objective.cc
  tests/apps/eval_cli_test.cc tests/apps/export_cli_test.cc tests/apps/hostile_input_test.cc tests/apps/report_cli_test.cc
  tests/apps/train_cli_test.cc tests/coordinator/sweep_setup_test.cc tests/coordinator/coordinator_test.cc
  tests/core/messages_test.cc tests/core/paired_ratio_test.cc tests/db/crash_writer.cc tests/eval/text_data_test.cc
  tests/finetune/train_state_test.cc tests/model/bpe_trainer_test.cc tests/model/checkpoint_test.cc
  tests/model/tokenizer_test.cc tests/worker/finetune_task_test.cc
  worker/worker_loop.cc)

if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 12
   AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  foreach(source IN LISTS CDMOE_JSON_BOUNDS_FALSE_POSITIVES)
    # The directory whose CMakeLists.txt adds the file: the first component of its path.
    string(REGEX REPLACE "/.*" "" folder "${source}")
    set_source_files_properties(${PROJECT_SOURCE_DIR}/${source} DIRECTORY ${PROJECT_SOURCE_DIR}/${folder}
                                PROPERTIES COMPILE_OPTIONS -Wno-array-bounds)
  endforeach()
endif()
