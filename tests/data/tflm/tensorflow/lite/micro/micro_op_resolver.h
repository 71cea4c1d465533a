// Stand-in for TensorFlow Lite Micro's tensorflow/lite/micro/micro_op_resolver.h: the base
// class MicroInterpreter takes (a subset: TFLM's pure virtual FindOp/GetOpDataParser are
// left out), and TFLMRegistration (tensorflow/lite/micro/micro_common.h in TFLM).
#ifndef TENSORFLOW_LITE_MICRO_MICRO_OP_RESOLVER_H_
#define TENSORFLOW_LITE_MICRO_MICRO_OP_RESOLVER_H_

#include "tensorflow/lite/c/common.h"

struct TFLMRegistration {
  const char* custom_name = nullptr;
  int32_t builtin_code = 0;
};

namespace tflite {

class MicroOpResolver {
 public:
  virtual ~MicroOpResolver() {}
};

}  // namespace tflite

#endif  // TENSORFLOW_LITE_MICRO_MICRO_OP_RESOLVER_H_
