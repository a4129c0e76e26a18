/* The version: the build passes -DDUCKY_VERSION from the one source. */
#ifndef DUCKY_VERSION
#define DUCKY_VERSION "0.1.0"
#endif
