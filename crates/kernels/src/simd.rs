//! Runtime CPU-feature dispatch for the hand-written loops.
//!
//! The workspace builds for baseline x86-64 (SSE2), where the channel loops
//! would vectorise to 4 lanes and `mul_add` would be a libm call. Each hot
//! kernel is therefore written once as an `#[inline(always)]` function generic
//! over `const FMA: bool` and instantiated inside `#[target_feature]` wrappers
//! (AVX-512 or AVX2+FMA), picked at run time: the compiler auto-vectorises the
//! same source to 16 or 8 lanes.

/// Multiply-add `a*b + c`: one fused instruction when the caller was compiled
/// with FMA, a plain multiply and add otherwise (never the slow libm call).
#[inline(always)]
pub(crate) fn fmadd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `max(a, b)` as a plain compare-select, which becomes one `vmaxps`;
/// `f32::max` must also handle NaN in either operand and costs several
/// instructions per vector (measured: max pool 6x slower). A NaN `a` yields `b`.
#[inline(always)]
pub(crate) fn fast_max(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// Defines `fn $name(args) -> ret` that calls `$generic::<FMA>(args)` compiled
/// for the best instruction set the CPU has.
macro_rules! simd_dispatch {
    ($vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) => $generic:ident) => {
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                fn avx512($($arg: $ty),*) {
                    $generic::<true>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) {
                    $generic::<true>($($arg),*)
                }
                if std::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the features `avx512` is compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: as above, for `avx2`.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $generic::<false>($($arg),*)
        }
    };
}
pub(crate) use simd_dispatch;
