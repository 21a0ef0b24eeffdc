// The registered model families, one definition per file of this folder (family.cc's table
// lists them). Adding a family: a file here defining its Family, a line here and one there.
#pragma once

#include "model/family.h"

namespace cdmoe::model {

extern const Family kDeepseekFamily;
extern const Family kDeepseekV2Family;
extern const Family kDeepseekV3Family;
extern const Family kGlm4MoeFamily;
extern const Family kQwen2MoeFamily;
extern const Family kQwen3MoeFamily;
extern const Family kMixtralFamily;
extern const Family kOlmoeFamily;

}  // namespace cdmoe::model
