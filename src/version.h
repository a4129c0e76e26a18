/* The version: the build passes -DDUCKY_VERSION from VERSION, its one source. */
#ifndef DUCKY_VERSION
#error "build with -DDUCKY_VERSION=\"x.y.z\" (make and the rock pass it, from VERSION)"
#endif
