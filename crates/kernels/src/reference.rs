//! Naive reference implementations for the tests: straight loops over
//! (b, y, x, c) in f64, written from the TF definitions, not for speed.
//! Each returns a dense NHWC output and, per element, the sum of absolute
//! terms (the scale the rounding error of an f32 sum is relative to).

use crate::{output_size, Nhwc, Padding};

pub struct Dense {
    pub shape: [usize; 4],
    pub val: Vec<f64>,
    pub mag: Vec<f64>,
}

impl Dense {
    fn zeros(shape: [usize; 4]) -> Self {
        let len = shape.iter().product();
        Dense {
            shape,
            val: vec![0.0; len],
            mag: vec![0.0; len],
        }
    }
    fn idx(&self, b: usize, y: usize, x: usize, c: usize) -> usize {
        ((b * self.shape[1] + y) * self.shape[2] + x) * self.shape[3] + c
    }
}

pub fn at(v: &Nhwc, b: usize, y: isize, x: isize, c: usize, relu: bool) -> Option<f64> {
    if y < 0 || x < 0 || y >= v.h as isize || x >= v.w as isize {
        return None;
    }
    let p = (b * v.h + y as usize) * v.w + x as usize;
    let x = f64::from(v.data[p * v.pixel_stride + c]);
    Some(if relu { x.max(0.0) } else { x })
}

/// HWIO convolution with TF padding, bias, optional input ReLU.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    v: &Nhwc,
    wts: &[f32],
    kh: usize,
    kw: usize,
    s: [usize; 2],
    pad: Padding,
    bias: &[f32],
    relu: bool,
) -> Dense {
    let (ho, pt, _) = output_size(v.h, kh, s[0], pad);
    let (wo, pl, _) = output_size(v.w, kw, s[1], pad);
    let cout = bias.len();
    let mut d = Dense::zeros([v.n, ho, wo, cout]);
    for b in 0..v.n {
        for y in 0..ho {
            for x in 0..wo {
                for co in 0..cout {
                    let (mut acc, mut mag) = (f64::from(bias[co]), f64::from(bias[co]).abs());
                    for dy in 0..kh {
                        for dx in 0..kw {
                            let yi = (y * s[0] + dy) as isize - pt as isize;
                            let xi = (x * s[1] + dx) as isize - pl as isize;
                            for ci in 0..v.c {
                                if let Some(val) = at(v, b, yi, xi, ci, relu) {
                                    let t = val
                                        * f64::from(wts[((dy * kw + dx) * v.c + ci) * cout + co]);
                                    acc += t;
                                    mag += t.abs();
                                }
                            }
                        }
                    }
                    let i = d.idx(b, y, x, co);
                    d.val[i] = acc;
                    d.mag[i] = mag;
                }
            }
        }
    }
    d
}

/// Depthwise SAME convolution, weights [k][k][c].
pub fn depthwise(v: &Nhwc, wts: &[f32], k: usize, s: usize, relu: bool) -> Dense {
    let (ho, pt, _) = output_size(v.h, k, s, Padding::Same);
    let (wo, pl, _) = output_size(v.w, k, s, Padding::Same);
    let mut d = Dense::zeros([v.n, ho, wo, v.c]);
    for b in 0..v.n {
        for y in 0..ho {
            for x in 0..wo {
                for c in 0..v.c {
                    let (mut acc, mut mag) = (0.0, 0.0);
                    for dy in 0..k {
                        for dx in 0..k {
                            let yi = (y * s + dy) as isize - pt as isize;
                            let xi = (x * s + dx) as isize - pl as isize;
                            if let Some(val) = at(v, b, yi, xi, c, relu) {
                                let t = val * f64::from(wts[(dy * k + dx) * v.c + c]);
                                acc += t;
                                mag += t.abs();
                            }
                        }
                    }
                    let i = d.idx(b, y, x, c);
                    d.val[i] = acc;
                    d.mag[i] = mag;
                }
            }
        }
    }
    d
}

/// SAME pool: average over valid elements, or maximum.
pub fn pool(v: &Nhwc, k: usize, s: usize, max: bool) -> Dense {
    let (ho, pt, _) = output_size(v.h, k, s, Padding::Same);
    let (wo, pl, _) = output_size(v.w, k, s, Padding::Same);
    let mut d = Dense::zeros([v.n, ho, wo, v.c]);
    for b in 0..v.n {
        for y in 0..ho {
            for x in 0..wo {
                for c in 0..v.c {
                    let mut vals = Vec::new();
                    for dy in 0..k {
                        for dx in 0..k {
                            let yi = (y * s + dy) as isize - pt as isize;
                            let xi = (x * s + dx) as isize - pl as isize;
                            vals.extend(at(v, b, yi, xi, c, false));
                        }
                    }
                    let i = d.idx(b, y, x, c);
                    d.val[i] = if max {
                        vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                    } else {
                        vals.iter().sum::<f64>() / vals.len() as f64
                    };
                    d.mag[i] = vals.iter().map(|v| v.abs()).fold(0.0, f64::max);
                }
            }
        }
    }
    d
}
