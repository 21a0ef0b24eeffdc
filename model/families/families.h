// The registered model families: one traits definition per family file.
#pragma once

#include "model/model_config.h"

namespace cdmoe::model {

extern const FamilyTraits kDeepseekTraits;
extern const FamilyTraits kQwen2MoeTraits;

}  // namespace cdmoe::model
