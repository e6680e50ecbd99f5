#pragma once
#include <munge.h>
