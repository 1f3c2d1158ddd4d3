// The whole of core/ in one include: tensors, autograd, ops, printing.
#pragma once

#include "core/autograd.h"
#include "core/error.h"
#include "core/format.h"
#include "core/generator.h"
#include "core/gradcheck.h"
#include "core/graph_dot.h"
#include "core/ops.h"
#include "core/tensor.h"
