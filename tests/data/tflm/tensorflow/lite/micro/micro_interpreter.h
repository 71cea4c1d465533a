// Stand-in for TensorFlow Lite Micro's tensorflow/lite/micro/micro_interpreter.h: the
// constructor and the methods tfkd's main.cc calls, with TFLM's signatures. Declarations
// only (as in TFLM): code using it compiles, it links only against TFLM.
#ifndef TENSORFLOW_LITE_MICRO_MICRO_INTERPRETER_H_
#define TENSORFLOW_LITE_MICRO_MICRO_INTERPRETER_H_

#include <cstddef>
#include <cstdint>

#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/micro_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace tflite {

class MicroResourceVariables;
class MicroProfilerInterface;

class MicroInterpreter {
 public:
  MicroInterpreter(const Model* model, const MicroOpResolver& op_resolver,
                   uint8_t* tensor_arena, size_t tensor_arena_size,
                   MicroResourceVariables* resource_variables = nullptr,
                   MicroProfilerInterface* profiler = nullptr,
                   bool preserve_all_tensors = false);
  ~MicroInterpreter();

  TfLiteStatus AllocateTensors();
  TfLiteStatus Invoke();

  TfLiteTensor* input(size_t index);
  size_t inputs_size() const;
  TfLiteTensor* output(size_t index);
  size_t outputs_size() const;

  TfLiteStatus initialization_status() const;
  size_t arena_used_bytes() const;
};

}  // namespace tflite

#endif  // TENSORFLOW_LITE_MICRO_MICRO_INTERPRETER_H_
