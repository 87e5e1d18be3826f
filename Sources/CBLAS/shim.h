#ifndef FRESHLINE_CBLAS_SHIM_H
#define FRESHLINE_CBLAS_SHIM_H
#include <cblas.h>
// mallopt: the engine keeps large batch buffers on the heap (see BLAS.configured); Glibc's module lacks malloc.h.
#include <malloc.h>
#endif
