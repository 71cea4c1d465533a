// A minimal stand-in for TFLite Micro's micro_mutable_op_resolver.h (PyPI ships no TFLM
// headers): the same class template and Add* method names for the common builtin ops,
// so that a generated resolver with a wrong method name or count fails to compile.
#ifndef TENSORFLOW_LITE_MICRO_MICRO_MUTABLE_OP_RESOLVER_H_
#define TENSORFLOW_LITE_MICRO_MICRO_MUTABLE_OP_RESOLVER_H_

typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;

namespace tflite {

template <unsigned int tOpCount>
class MicroMutableOpResolver {
 public:
  static_assert(tOpCount > 0, "resolver needs at least one op");
#define TFKD_STANDIN_OP(name) \
  TfLiteStatus name() { return ++registered_ <= tOpCount ? kTfLiteOk : kTfLiteError; }
  TFKD_STANDIN_OP(AddAdd)
  TFKD_STANDIN_OP(AddAveragePool2D)
  TFKD_STANDIN_OP(AddConcatenation)
  TFKD_STANDIN_OP(AddConv2D)
  TFKD_STANDIN_OP(AddDepthwiseConv2D)
  TFKD_STANDIN_OP(AddDequantize)
  TFKD_STANDIN_OP(AddFullyConnected)
  TFKD_STANDIN_OP(AddLogistic)
  TFKD_STANDIN_OP(AddMaxPool2D)
  TFKD_STANDIN_OP(AddMean)
  TFKD_STANDIN_OP(AddMul)
  TFKD_STANDIN_OP(AddPad)
  TFKD_STANDIN_OP(AddQuantize)
  TFKD_STANDIN_OP(AddRelu)
  TFKD_STANDIN_OP(AddRelu6)
  TFKD_STANDIN_OP(AddReshape)
  TFKD_STANDIN_OP(AddSoftmax)
  TFKD_STANDIN_OP(AddSqueeze)
  TFKD_STANDIN_OP(AddStridedSlice)
  TFKD_STANDIN_OP(AddTanh)
#undef TFKD_STANDIN_OP
  unsigned int registered() const { return registered_; }

 private:
  unsigned int registered_ = 0;
};

}  // namespace tflite

#endif
