// Stand-in for TensorFlow Lite Micro's tensorflow/lite/micro/micro_mutable_op_resolver.h
// (PyPI ships no TFLM headers), for tfkd's compile tests. A faithful subset: the same class
// template, the same Add* names and signatures (a TFLMRegistration with a Register_*()
// default, as in TFLM's 2025 header), GetRegistrationLength(). Generated from
// tfkd/export/tflm_resolver_ops.txt; Register_* are defined inline here (TFLM defines them in
// its kernels) so that a test program links without TFLM.
#ifndef TENSORFLOW_LITE_MICRO_MICRO_MUTABLE_OP_RESOLVER_H_
#define TENSORFLOW_LITE_MICRO_MICRO_MUTABLE_OP_RESOLVER_H_

#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/micro_op_resolver.h"

namespace tflite {

inline TFLMRegistration Register_ABS() { return TFLMRegistration(); }
inline TFLMRegistration Register_ADD() { return TFLMRegistration(); }
inline TFLMRegistration Register_ADD_N() { return TFLMRegistration(); }
inline TFLMRegistration Register_ARG_MAX() { return TFLMRegistration(); }
inline TFLMRegistration Register_ARG_MIN() { return TFLMRegistration(); }
inline TFLMRegistration Register_ASSIGN_VARIABLE() { return TFLMRegistration(); }
inline TFLMRegistration Register_AVERAGE_POOL_2D() { return TFLMRegistration(); }
inline TFLMRegistration Register_BATCH_MATMUL() { return TFLMRegistration(); }
inline TFLMRegistration Register_BATCH_TO_SPACE_ND() { return TFLMRegistration(); }
inline TFLMRegistration Register_BROADCAST_ARGS() { return TFLMRegistration(); }
inline TFLMRegistration Register_BROADCAST_TO() { return TFLMRegistration(); }
inline TFLMRegistration Register_CALL_ONCE() { return TFLMRegistration(); }
inline TFLMRegistration Register_CAST() { return TFLMRegistration(); }
inline TFLMRegistration Register_CEIL() { return TFLMRegistration(); }
inline TFLMRegistration Register_CONCATENATION() { return TFLMRegistration(); }
inline TFLMRegistration Register_CONV_2D() { return TFLMRegistration(); }
inline TFLMRegistration Register_COS() { return TFLMRegistration(); }
inline TFLMRegistration Register_CUMSUM() { return TFLMRegistration(); }
inline TFLMRegistration Register_DEPTHWISE_CONV_2D() { return TFLMRegistration(); }
inline TFLMRegistration Register_DEPTH_TO_SPACE() { return TFLMRegistration(); }
inline TFLMRegistration Register_DEQUANTIZE() { return TFLMRegistration(); }
inline TFLMRegistration Register_DIV() { return TFLMRegistration(); }
inline TFLMRegistration Register_ELU() { return TFLMRegistration(); }
inline TFLMRegistration Register_EMBEDDING_LOOKUP() { return TFLMRegistration(); }
inline TFLMRegistration Register_EQUAL() { return TFLMRegistration(); }
inline TFLMRegistration Register_EXP() { return TFLMRegistration(); }
inline TFLMRegistration Register_EXPAND_DIMS() { return TFLMRegistration(); }
inline TFLMRegistration Register_FILL() { return TFLMRegistration(); }
inline TFLMRegistration Register_FLOOR() { return TFLMRegistration(); }
inline TFLMRegistration Register_FLOOR_DIV() { return TFLMRegistration(); }
inline TFLMRegistration Register_FLOOR_MOD() { return TFLMRegistration(); }
inline TFLMRegistration Register_FULLY_CONNECTED() { return TFLMRegistration(); }
inline TFLMRegistration Register_GATHER() { return TFLMRegistration(); }
inline TFLMRegistration Register_GATHER_ND() { return TFLMRegistration(); }
inline TFLMRegistration Register_GREATER() { return TFLMRegistration(); }
inline TFLMRegistration Register_GREATER_EQUAL() { return TFLMRegistration(); }
inline TFLMRegistration Register_HARD_SWISH() { return TFLMRegistration(); }
inline TFLMRegistration Register_IF() { return TFLMRegistration(); }
inline TFLMRegistration Register_L2_NORMALIZATION() { return TFLMRegistration(); }
inline TFLMRegistration Register_L2_POOL_2D() { return TFLMRegistration(); }
inline TFLMRegistration Register_LEAKY_RELU() { return TFLMRegistration(); }
inline TFLMRegistration Register_LESS() { return TFLMRegistration(); }
inline TFLMRegistration Register_LESS_EQUAL() { return TFLMRegistration(); }
inline TFLMRegistration Register_LOG() { return TFLMRegistration(); }
inline TFLMRegistration Register_LOGICAL_AND() { return TFLMRegistration(); }
inline TFLMRegistration Register_LOGICAL_NOT() { return TFLMRegistration(); }
inline TFLMRegistration Register_LOGICAL_OR() { return TFLMRegistration(); }
inline TFLMRegistration Register_LOGISTIC() { return TFLMRegistration(); }
inline TFLMRegistration Register_LOG_SOFTMAX() { return TFLMRegistration(); }
inline TFLMRegistration Register_MAXIMUM() { return TFLMRegistration(); }
inline TFLMRegistration Register_MAX_POOL_2D() { return TFLMRegistration(); }
inline TFLMRegistration Register_MEAN() { return TFLMRegistration(); }
inline TFLMRegistration Register_MINIMUM() { return TFLMRegistration(); }
inline TFLMRegistration Register_MIRROR_PAD() { return TFLMRegistration(); }
inline TFLMRegistration Register_MUL() { return TFLMRegistration(); }
inline TFLMRegistration Register_NEG() { return TFLMRegistration(); }
inline TFLMRegistration Register_NOT_EQUAL() { return TFLMRegistration(); }
inline TFLMRegistration Register_PACK() { return TFLMRegistration(); }
inline TFLMRegistration Register_PAD() { return TFLMRegistration(); }
inline TFLMRegistration Register_PADV2() { return TFLMRegistration(); }
inline TFLMRegistration Register_PRELU() { return TFLMRegistration(); }
inline TFLMRegistration Register_QUANTIZE() { return TFLMRegistration(); }
inline TFLMRegistration Register_READ_VARIABLE() { return TFLMRegistration(); }
inline TFLMRegistration Register_REDUCE_MAX() { return TFLMRegistration(); }
inline TFLMRegistration Register_REDUCE_MIN() { return TFLMRegistration(); }
inline TFLMRegistration Register_RELU() { return TFLMRegistration(); }
inline TFLMRegistration Register_RELU6() { return TFLMRegistration(); }
inline TFLMRegistration Register_RESHAPE() { return TFLMRegistration(); }
inline TFLMRegistration Register_RESIZE_BILINEAR() { return TFLMRegistration(); }
inline TFLMRegistration Register_RESIZE_NEAREST_NEIGHBOR() { return TFLMRegistration(); }
inline TFLMRegistration Register_REVERSE_V2() { return TFLMRegistration(); }
inline TFLMRegistration Register_ROUND() { return TFLMRegistration(); }
inline TFLMRegistration Register_RSQRT() { return TFLMRegistration(); }
inline TFLMRegistration Register_SELECT_V2() { return TFLMRegistration(); }
inline TFLMRegistration Register_SHAPE() { return TFLMRegistration(); }
inline TFLMRegistration Register_SIN() { return TFLMRegistration(); }
inline TFLMRegistration Register_SLICE() { return TFLMRegistration(); }
inline TFLMRegistration Register_SOFTMAX() { return TFLMRegistration(); }
inline TFLMRegistration Register_SPACE_TO_BATCH_ND() { return TFLMRegistration(); }
inline TFLMRegistration Register_SPACE_TO_DEPTH() { return TFLMRegistration(); }
inline TFLMRegistration Register_SPLIT() { return TFLMRegistration(); }
inline TFLMRegistration Register_SPLIT_V() { return TFLMRegistration(); }
inline TFLMRegistration Register_SQRT() { return TFLMRegistration(); }
inline TFLMRegistration Register_SQUARE() { return TFLMRegistration(); }
inline TFLMRegistration Register_SQUARED_DIFFERENCE() { return TFLMRegistration(); }
inline TFLMRegistration Register_SQUEEZE() { return TFLMRegistration(); }
inline TFLMRegistration Register_STRIDED_SLICE() { return TFLMRegistration(); }
inline TFLMRegistration Register_SUB() { return TFLMRegistration(); }
inline TFLMRegistration Register_SUM() { return TFLMRegistration(); }
inline TFLMRegistration Register_SVDF() { return TFLMRegistration(); }
inline TFLMRegistration Register_TANH() { return TFLMRegistration(); }
inline TFLMRegistration Register_TRANSPOSE() { return TFLMRegistration(); }
inline TFLMRegistration Register_TRANSPOSE_CONV() { return TFLMRegistration(); }
inline TFLMRegistration Register_UNIDIRECTIONAL_SEQUENCE_LSTM() { return TFLMRegistration(); }
inline TFLMRegistration Register_UNPACK() { return TFLMRegistration(); }
inline TFLMRegistration Register_VAR_HANDLE() { return TFLMRegistration(); }
inline TFLMRegistration Register_WHILE() { return TFLMRegistration(); }
inline TFLMRegistration Register_ZEROS_LIKE() { return TFLMRegistration(); }

template <unsigned int tOpCount>
class MicroMutableOpResolver : public MicroOpResolver {
 public:
  explicit MicroMutableOpResolver() {}

  TfLiteStatus AddAbs(
      const TFLMRegistration& registration = Register_ABS()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddAdd(
      const TFLMRegistration& registration = Register_ADD()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddAddN(
      const TFLMRegistration& registration = Register_ADD_N()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddArgMax(
      const TFLMRegistration& registration = Register_ARG_MAX()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddArgMin(
      const TFLMRegistration& registration = Register_ARG_MIN()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddAssignVariable(
      const TFLMRegistration& registration = Register_ASSIGN_VARIABLE()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddAveragePool2D(
      const TFLMRegistration& registration = Register_AVERAGE_POOL_2D()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddBatchMatMul(
      const TFLMRegistration& registration = Register_BATCH_MATMUL()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddBatchToSpaceNd(
      const TFLMRegistration& registration = Register_BATCH_TO_SPACE_ND()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddBroadcastArgs(
      const TFLMRegistration& registration = Register_BROADCAST_ARGS()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddBroadcastTo(
      const TFLMRegistration& registration = Register_BROADCAST_TO()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddCallOnce(
      const TFLMRegistration& registration = Register_CALL_ONCE()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddCast(
      const TFLMRegistration& registration = Register_CAST()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddCeil(
      const TFLMRegistration& registration = Register_CEIL()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddConcatenation(
      const TFLMRegistration& registration = Register_CONCATENATION()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddConv2D(
      const TFLMRegistration& registration = Register_CONV_2D()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddCos(
      const TFLMRegistration& registration = Register_COS()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddCumSum(
      const TFLMRegistration& registration = Register_CUMSUM()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddDepthToSpace(
      const TFLMRegistration& registration = Register_DEPTH_TO_SPACE()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddDepthwiseConv2D(
      const TFLMRegistration& registration = Register_DEPTHWISE_CONV_2D()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddDequantize(
      const TFLMRegistration& registration = Register_DEQUANTIZE()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddDiv(
      const TFLMRegistration& registration = Register_DIV()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddElu(
      const TFLMRegistration& registration = Register_ELU()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddEmbeddingLookup(
      const TFLMRegistration& registration = Register_EMBEDDING_LOOKUP()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddEqual(
      const TFLMRegistration& registration = Register_EQUAL()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddExp(
      const TFLMRegistration& registration = Register_EXP()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddExpandDims(
      const TFLMRegistration& registration = Register_EXPAND_DIMS()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddFill(
      const TFLMRegistration& registration = Register_FILL()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddFloor(
      const TFLMRegistration& registration = Register_FLOOR()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddFloorDiv(
      const TFLMRegistration& registration = Register_FLOOR_DIV()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddFloorMod(
      const TFLMRegistration& registration = Register_FLOOR_MOD()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddFullyConnected(
      const TFLMRegistration& registration = Register_FULLY_CONNECTED()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddGather(
      const TFLMRegistration& registration = Register_GATHER()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddGatherNd(
      const TFLMRegistration& registration = Register_GATHER_ND()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddGreater(
      const TFLMRegistration& registration = Register_GREATER()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddGreaterEqual(
      const TFLMRegistration& registration = Register_GREATER_EQUAL()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddHardSwish(
      const TFLMRegistration& registration = Register_HARD_SWISH()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddIf(
      const TFLMRegistration& registration = Register_IF()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddL2Normalization(
      const TFLMRegistration& registration = Register_L2_NORMALIZATION()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddL2Pool2D(
      const TFLMRegistration& registration = Register_L2_POOL_2D()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddLeakyRelu(
      const TFLMRegistration& registration = Register_LEAKY_RELU()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddLess(
      const TFLMRegistration& registration = Register_LESS()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddLessEqual(
      const TFLMRegistration& registration = Register_LESS_EQUAL()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddLog(
      const TFLMRegistration& registration = Register_LOG()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddLogSoftmax(
      const TFLMRegistration& registration = Register_LOG_SOFTMAX()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddLogicalAnd(
      const TFLMRegistration& registration = Register_LOGICAL_AND()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddLogicalNot(
      const TFLMRegistration& registration = Register_LOGICAL_NOT()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddLogicalOr(
      const TFLMRegistration& registration = Register_LOGICAL_OR()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddLogistic(
      const TFLMRegistration& registration = Register_LOGISTIC()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddMaxPool2D(
      const TFLMRegistration& registration = Register_MAX_POOL_2D()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddMaximum(
      const TFLMRegistration& registration = Register_MAXIMUM()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddMean(
      const TFLMRegistration& registration = Register_MEAN()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddMinimum(
      const TFLMRegistration& registration = Register_MINIMUM()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddMirrorPad(
      const TFLMRegistration& registration = Register_MIRROR_PAD()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddMul(
      const TFLMRegistration& registration = Register_MUL()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddNeg(
      const TFLMRegistration& registration = Register_NEG()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddNotEqual(
      const TFLMRegistration& registration = Register_NOT_EQUAL()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddPack(
      const TFLMRegistration& registration = Register_PACK()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddPad(
      const TFLMRegistration& registration = Register_PAD()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddPadV2(
      const TFLMRegistration& registration = Register_PADV2()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddPrelu(
      const TFLMRegistration& registration = Register_PRELU()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddQuantize(
      const TFLMRegistration& registration = Register_QUANTIZE()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddReadVariable(
      const TFLMRegistration& registration = Register_READ_VARIABLE()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddReduceMax(
      const TFLMRegistration& registration = Register_REDUCE_MAX()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddReduceMin(
      const TFLMRegistration& registration = Register_REDUCE_MIN()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddRelu(
      const TFLMRegistration& registration = Register_RELU()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddRelu6(
      const TFLMRegistration& registration = Register_RELU6()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddReshape(
      const TFLMRegistration& registration = Register_RESHAPE()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddResizeBilinear(
      const TFLMRegistration& registration = Register_RESIZE_BILINEAR()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddResizeNearestNeighbor() { return AddBuiltin(Register_RESIZE_NEAREST_NEIGHBOR()); }
  TfLiteStatus AddReverseV2(
      const TFLMRegistration& registration = Register_REVERSE_V2()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddRound(
      const TFLMRegistration& registration = Register_ROUND()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddRsqrt(
      const TFLMRegistration& registration = Register_RSQRT()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddSelectV2(
      const TFLMRegistration& registration = Register_SELECT_V2()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddShape(
      const TFLMRegistration& registration = Register_SHAPE()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddSin(
      const TFLMRegistration& registration = Register_SIN()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddSlice(
      const TFLMRegistration& registration = Register_SLICE()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddSoftmax(
      const TFLMRegistration& registration = Register_SOFTMAX()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddSpaceToBatchNd(
      const TFLMRegistration& registration = Register_SPACE_TO_BATCH_ND()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddSpaceToDepth(
      const TFLMRegistration& registration = Register_SPACE_TO_DEPTH()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddSplit(
      const TFLMRegistration& registration = Register_SPLIT()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddSplitV(
      const TFLMRegistration& registration = Register_SPLIT_V()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddSqrt(
      const TFLMRegistration& registration = Register_SQRT()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddSquare(
      const TFLMRegistration& registration = Register_SQUARE()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddSquaredDifference(
      const TFLMRegistration& registration = Register_SQUARED_DIFFERENCE()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddSqueeze(
      const TFLMRegistration& registration = Register_SQUEEZE()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddStridedSlice(
      const TFLMRegistration& registration = Register_STRIDED_SLICE()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddSub(
      const TFLMRegistration& registration = Register_SUB()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddSum(
      const TFLMRegistration& registration = Register_SUM()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddSvdf(
      const TFLMRegistration& registration = Register_SVDF()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddTanh(
      const TFLMRegistration& registration = Register_TANH()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddTranspose(
      const TFLMRegistration& registration = Register_TRANSPOSE()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddTransposeConv(
      const TFLMRegistration& registration = Register_TRANSPOSE_CONV()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddUnidirectionalSequenceLSTM(
      const TFLMRegistration& registration = Register_UNIDIRECTIONAL_SEQUENCE_LSTM()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddUnpack(
      const TFLMRegistration& registration = Register_UNPACK()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddVarHandle(
      const TFLMRegistration& registration = Register_VAR_HANDLE()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddWhile(
      const TFLMRegistration& registration = Register_WHILE()) {
    return AddBuiltin(registration);
  }
  TfLiteStatus AddZerosLike(
      const TFLMRegistration& registration = Register_ZEROS_LIKE()) {
    return AddBuiltin(registration);
  }

  unsigned int GetRegistrationLength() { return registrations_len_; }

 private:
  TfLiteStatus AddBuiltin(const TFLMRegistration& registration) {
    if (registrations_len_ >= tOpCount) return kTfLiteError;
    registrations_[registrations_len_++] = registration;
    return kTfLiteOk;
  }

  TFLMRegistration registrations_[tOpCount];
  unsigned int registrations_len_ = 0;
};

};  // namespace tflite

#endif  // TENSORFLOW_LITE_MICRO_MICRO_MUTABLE_OP_RESOLVER_H_
