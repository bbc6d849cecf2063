// The whole public API of genai-kernels.
#pragma once

#include "genai/attention.hpp"
#include "genai/buffer.hpp"
#include "genai/config.hpp"
#include "genai/context.hpp"
#include "genai/diffusion.hpp"
#include "genai/dtype.hpp"
#include "genai/error.hpp"
#include "genai/flow.hpp"
#include "genai/info.hpp"
#include "genai/io.hpp"
#include "genai/langevin.hpp"
#include "genai/linalg.hpp"
#include "genai/ode.hpp"
#include "genai/rng.hpp"
