#ifndef FRESHLINE_CBLAS_SHIM_H
#define FRESHLINE_CBLAS_SHIM_H
#include <cblas.h>
#endif
