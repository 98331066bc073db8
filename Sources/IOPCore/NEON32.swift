// 32-bit ARM (armv7 with NEON and VFPv4, the armhf boards): vector float arithmetic through LLVM's
// vector intrinsics. The stdlib writes SIMD arithmetic lane by lane and leaves it to LLVM's
// vectorizers to fuse the lanes again, which they do on AArch64 and x86 but refuse on 32-bit ARM
// Linux: NEON flushes subnormals to zero, so it is not IEEE-exact, and LLVM only vectorizes float
// code for it under fast-math. Without this file every `addProduct` of the kernels became four
// scalar VFP `vfma.f32` (seen in `objdump -d` of the armhf iop-node). The kernels accept NEON's
// flush-to-zero: subnormal activations and weights are far below the outputs' tolerance.
//
// These members shadow the stdlib's generic ones for SIMD4<Float> (a concrete type's member wins
// over a protocol extension's), so the kernels' source stays the same on every target. Only
// cross/build armhf compiles this (with -enable-experimental-feature BuiltinModule); elsewhere the
// file is empty.
#if arch(arm)
    import Builtin

    extension SIMD4 where Scalar == Float {
        /// self += a * b, fused: one NEON `vfma.f32` on a q register.
        @inline(__always)
        public mutating func addProduct(_ a: SIMD4<Float>, _ b: SIMD4<Float>) {
            _storage._value = Builtin.int_fma_Vec4xFPIEEE32(a._storage._value, b._storage._value, _storage._value)
        }

        /// One NEON `vadd.f32` (the compare-and-select of `Activation.apply` vectorizes as it is).
        @inline(__always)
        public static func + (a: SIMD4<Float>, b: SIMD4<Float>) -> SIMD4<Float> {
            var r = a
            r._storage._value = Builtin.fadd_Vec4xFPIEEE32(a._storage._value, b._storage._value)
            return r
        }
    }
#endif
