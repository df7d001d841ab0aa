/* Force-included (-include) into the prebuilt addon only (scripts/prebuild.mjs), never into a local build: binds the
 * glibc functions the kernels call to their oldest x86-64 symbol versions, so that a binary linked on a new
 * distribution (glibc 2.34 moved the pthread functions into libc and versioned them anew; 2.27 and 2.29 gave expf,
 * logf, exp and pow new versions without the old error wrappers) still loads on glibc 2.17 and later. The old
 * versions remain in every newer glibc and run the same code (the math ones add errno handling around it). */
#if defined(__x86_64__) && defined(__linux__) /* prebuild.mjs includes it only where the C library is glibc */
__asm__(".symver pthread_create,pthread_create@GLIBC_2.2.5");
__asm__(".symver pthread_detach,pthread_detach@GLIBC_2.2.5");
__asm__(".symver pthread_once,pthread_once@GLIBC_2.2.5");
__asm__(".symver pthread_attr_setstacksize,pthread_attr_setstacksize@GLIBC_2.2.5");
__asm__(".symver pthread_mutexattr_init,pthread_mutexattr_init@GLIBC_2.2.5");
__asm__(".symver pthread_mutexattr_destroy,pthread_mutexattr_destroy@GLIBC_2.2.5");
__asm__(".symver pthread_mutexattr_settype,pthread_mutexattr_settype@GLIBC_2.2.5");
__asm__(".symver memcpy,memcpy@GLIBC_2.2.5");
__asm__(".symver expf,expf@GLIBC_2.2.5");
__asm__(".symver logf,logf@GLIBC_2.2.5");
__asm__(".symver exp,exp@GLIBC_2.2.5");
__asm__(".symver pow,pow@GLIBC_2.2.5");
#endif
