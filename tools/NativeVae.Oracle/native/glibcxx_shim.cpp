// Provides std::ios_base_library_init() for GCC 12's libstdc++ (Debian 12), which lacks it.
// GCC 13 (GLIBCXX_3.4.32) moved the initialisation of the standard streams into libstdc++ behind this function,
// and objects built with GCC 13 call it instead of holding their own std::ios_base::Init. TorchSharp 0.107's
// libLibTorchSharp.so needs nothing else from GLIBCXX_3.4.32, so a static Init here restores the old behaviour.
#include <ios>

namespace std
{
    void ios_base_library_init()
    {
        static ios_base::Init init;
    }
}
