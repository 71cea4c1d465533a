// Stand-in for TensorFlow Lite's flatbuffers-generated tensorflow/lite/schema/schema_generated.h:
// tflite::Model and tflite::GetModel, declared as the generated code has them.
#ifndef FLATBUFFERS_GENERATED_SCHEMA_TFLITE_H_
#define FLATBUFFERS_GENERATED_SCHEMA_TFLITE_H_

#include <cstdint>

namespace tflite {

struct Model {
  uint32_t version() const;
};

const tflite::Model* GetModel(const void* buf);

}  // namespace tflite

#endif  // FLATBUFFERS_GENERATED_SCHEMA_TFLITE_H_
