//! [`Network`]: the stem, every cell and the final layer, loaded and runnable.

use crate::cell::{CellLayer, CellOutput};
use crate::layers::Precision;
use crate::layers::{ConvBn, Loader};
use crate::{ForwardError, Tensor, WeightSource};
use kernels::{PackedWeights, Padding};
use nasnet_genotype::conventions::conventions;
use nasnet_genotype::{CellKind, NetworkSpec};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// What a forward pass returns.
#[derive(Debug, Clone)]
pub struct Outputs {
    /// Batch size.
    pub n: usize,
    /// `[n, num_features]`: the global average of the ReLU of the last cell.
    pub features: Vec<f32>,
    /// `[n, num_classes]`, absent for a feature-vector-only network.
    pub logits: Option<Vec<f32>>,
}

impl Outputs {
    /// The outputs of consecutive sub-batches as one.
    fn concat(parts: Vec<Outputs>) -> Outputs {
        let n = parts.iter().map(|o| o.n).sum();
        let features = parts
            .iter()
            .flat_map(|o| o.features.iter().copied())
            .collect();
        let logits = parts
            .iter()
            .map(|o| o.logits.as_deref())
            .collect::<Option<Vec<_>>>()
            .map(|l| l.concat());
        Outputs {
            n,
            features,
            logits,
        }
    }
}

/// The final fully connected layer: weights `[features, classes]` and biases.
struct Dense {
    w: PackedWeights,
    b: Vec<f32>,
}

/// What sees each cell's output (by scope) in [`Network::forward_with_taps`].
type Tap<'a> = &'a mut dyn FnMut(&str, &Tensor);

/// A network ready to run.
pub struct Network {
    spec: NetworkSpec,
    stem: ConvBn,
    cells: Vec<CellLayer>,
    fc: Option<Dense>,
    /// Single-threaded pools for image-parallel batches (see [`Network::forward`]), made as
    /// calls need them (one per thread of the largest calling pool so far). They persist so
    /// that their threads' activation buffer pools do too ([`Network::release_buffers`]).
    image_workers: Mutex<Vec<Arc<rayon::ThreadPool>>>,
    /// The weights' file, for messages.
    source_name: String,
    /// Most images one pass runs at once (see [`Network::forward`]).
    images_per_pass: usize,
    precision: Precision,
}

/// Most bytes of activations a pass over several images holds at once: a larger batch is
/// run in consecutive parts (one image is bounded by the description's validation).
const BATCH_ACTIVATION_BYTES: u64 = 4 << 30;

impl Network {
    /// Validates the description ([`NetworkSpec::validate`]; its fields are public, so it
    /// may not come from `from_json` or extraction), then loads every weight it needs from
    /// `weights`, folding batch norms.
    pub fn load(spec: &NetworkSpec, weights: &dyn WeightSource) -> Result<Network, ForwardError> {
        Network::load_with(spec, weights, Precision::F32)
    }

    /// [`Network::load`] at a precision. Bf16 where the CPU has no bf16 hardware is f32
    /// ([`Network::precision`] tells which runs): emulating it would be slower and no closer
    /// to anything.
    pub fn load_with(
        spec: &NetworkSpec,
        weights: &dyn WeightSource,
        precision: Precision,
    ) -> Result<Network, ForwardError> {
        let precision = match precision {
            Precision::Bf16 if !kernels::Bf16Engine::detect().is_hardware() => Precision::F32,
            p => p,
        };
        let source_name = weights.source_name();
        spec.validate()
            .map_err(|source| ForwardError::InvalidSpec {
                source_name: source_name.clone(),
                source,
            })?;
        let per_image = spec.activation_elements_per_image().unwrap_or(u64::MAX);
        let images_per_pass = (BATCH_ACTIVATION_BYTES / per_image.saturating_mul(4).max(1))
            .clamp(1, usize::MAX as u64) as usize;
        let loader = Loader {
            src: weights,
            eps: spec.batch_norm_epsilon,
            precision,
        };
        let stem = loader.conv_bn(
            &conventions().weights(&spec.stem_scope),
            &conventions().stem_bn(&spec.stem_scope),
            3,
            3,
            3,
            Some(spec.stem_filters),
        )?;
        let cells = load_cells(&loader, spec)?;
        check_features(&loader, spec, &cells)?;
        let fc = match spec.num_classes {
            Some(classes) => Some(load_dense(&loader, spec.num_features, classes)?),
            None => None,
        };
        Ok(Network {
            spec: spec.clone(),
            stem,
            cells,
            fc,
            image_workers: Mutex::new(Vec::new()),
            source_name,
            images_per_pass,
            precision,
        })
    }

    /// The precision the GEMMs run in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    fn unsupported(&self, problem: impl Into<String>) -> ForwardError {
        ForwardError::Unsupported {
            source_name: self.source_name.clone(),
            problem: problem.into(),
        }
    }

    pub fn spec(&self) -> &NetworkSpec {
        &self.spec
    }

    /// Runs `images` `[N, H, W, 3]` with values in [0, 1].
    ///
    /// With `T` threads in the current rayon pool and `N >= T`, the first `N - N % T` images
    /// run one per thread, each with single-threaded kernels, and the rest as one batch with
    /// all threads in every kernel. Image by image, the working set stays in cache and the
    /// threads never wait for each other (at batch 8 on 2 cores: 6% faster than the whole
    /// batch with both threads in every kernel, `cargo bench -p nasnet-forward --bench
    /// full_size -- 8`). The results are the same either way, bit for bit: every kernel
    /// sums in the same order whatever its thread count.
    pub fn forward(&self, images: &Tensor) -> Result<Outputs, ForwardError> {
        self.check_input(images)?;
        let n = images.shape[0];
        // As many images at once as the activation budget allows, whatever the core count.
        let threads = rayon::current_num_threads().min(self.images_per_pass.max(1));
        let parallel = if threads > 1 { n - n % threads } else { 0 };
        if parallel == 0 {
            return self.run_in_parts(images, 0..n);
        }
        let Some(workers) = self.image_workers(threads) else {
            // No worker threads to be had: the whole batch with the caller's pool.
            return self.run_in_parts(images, 0..n);
        };
        let mut outputs = self.forward_image_parallel(images, parallel, &workers)?;
        if parallel < n {
            outputs.push(self.run_in_parts(images, parallel..n)?);
        }
        Ok(Outputs::concat(outputs))
    }

    /// Images `range` with all threads in every kernel, at most `images_per_pass` at a time
    /// so that a large batch's activations stay bounded (the results do not depend on the
    /// grouping: every image is computed alone, whatever the batch).
    fn run_in_parts(
        &self,
        images: &Tensor,
        range: std::ops::Range<usize>,
    ) -> Result<Outputs, ForwardError> {
        if range == (0..images.shape[0]) && range.len() <= self.images_per_pass {
            return self.run(images, None);
        }
        let step = self.images_per_pass.max(1);
        let parts = range
            .clone()
            .step_by(step)
            .map(|start| {
                let part = images.batch_range(start..(start + step).min(range.end));
                self.run(&part, None)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Outputs::concat(parts))
    }

    /// `threads` single-threaded pools, made now if there are fewer; `None` if the system
    /// will not give the threads.
    fn image_workers(&self, threads: usize) -> Option<Vec<Arc<rayon::ThreadPool>>> {
        let mut pools = self
            .image_workers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while pools.len() < threads {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .thread_name(|_| "amoeba-image".to_string())
                .build()
                .ok()?;
            pools.push(Arc::new(pool));
        }
        Some(pools[..threads].to_vec())
    }

    /// Frees the activation buffers pooled by the calling thread and by the threads that ran
    /// image-parallel batches (they are otherwise kept for the next pass).
    pub fn release_buffers(&self) {
        crate::release_pooled_buffers();
        let pools = self
            .image_workers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for pool in pools.iter() {
            pool.install(crate::release_pooled_buffers);
        }
    }

    /// Images `0..count` of `images`, one image at a time on each of the `workers`; one
    /// [`Outputs`] per image, in order.
    fn forward_image_parallel(
        &self,
        images: &Tensor,
        count: usize,
        workers: &[Arc<rayon::ThreadPool>],
    ) -> Result<Vec<Outputs>, ForwardError> {
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Result<Outputs, ForwardError>>>> =
            Mutex::new((0..count).map(|_| None).collect());
        let work = || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= count {
                break;
            }
            let image = images.batch_range(i..i + 1);
            let out = self.run(&image, None);
            results.lock().unwrap_or_else(PoisonError::into_inner)[i] = Some(out);
        };
        std::thread::scope(|s| {
            for pool in workers {
                s.spawn(|| pool.install(work));
            }
        });
        let results = results.into_inner().unwrap_or_else(PoisonError::into_inner);
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(self.unsupported("a worker thread stopped"))))
            .collect()
    }

    /// Runs `images` and shows `tap` every cell's output (by scope) as it is computed.
    pub fn forward_with_taps(
        &self,
        images: &Tensor,
        mut tap: impl FnMut(&str, &Tensor),
    ) -> Result<Outputs, ForwardError> {
        self.run(images, Some(&mut tap))
    }

    /// The whole batch at once, showing `tap` each cell's output (concatenated for it).
    fn run(&self, images: &Tensor, mut tap: Option<Tap>) -> Result<Outputs, ForwardError> {
        self.check_input(images)?;
        let _in_pass = crate::tensor::InPass::enter();
        let scaled = self.scale_input(images);
        let stem_out = self.run_stem(&scaled);
        // im2col scratch (the stem and any KxK convolution), reused by every layer of the pass.
        let mut scratch = Vec::new();
        drop(scaled);
        // outputs[0] is the stem; outputs[k] the output of cell k-1. Each is dropped after
        // the last cell that reads it (usually the next two; three back with NASNet-A
        // large's `skip_reduction_layer_input`).
        let last_use = last_uses(&self.spec);
        let mut outputs: Vec<Option<CellOutput>> = vec![Some(CellOutput::single(stem_out))];
        for (k, cell) in self.cells.iter().enumerate() {
            let layout = &cell.layout;
            let net = outputs
                .get(layout.input)
                .and_then(Option::as_ref)
                .ok_or_else(|| {
                    self.unsupported(format!(
                        "{}: input is not an output computed before it",
                        layout.scope
                    ))
                })?;
            let prev = match layout.prev {
                None => None,
                Some(p) => Some(outputs.get(p).and_then(Option::as_ref).ok_or_else(|| {
                    self.unsupported(format!(
                        "{}: prev_layer is not an output still held",
                        layout.scope
                    ))
                })?),
            };
            let out = cell.forward(net, prev, &mut scratch);
            if let Some(tap) = tap.as_mut() {
                tap(&layout.scope, &out.concatenated());
            }
            outputs.push(Some(out));
            for (i, output) in outputs.iter_mut().enumerate() {
                if last_use.get(i).is_some_and(|&last| last <= k) {
                    *output = None;
                }
            }
        }
        match outputs.pop().flatten() {
            Some(last) => Ok(self.final_layer(&last)),
            None => Err(self.unsupported("the network has no output")),
        }
    }

    fn check_input(&self, images: &Tensor) -> Result<(), ForwardError> {
        let [h, w] = self.spec.image_size;
        let [n, ih, iw, c] = images.shape;
        if n == 0 || ih != h || iw != w || c != 3 {
            return Err(ForwardError::InputShape {
                model: self.source_name.clone(),
                found: images.shape.to_vec(),
                h,
                w,
            });
        }
        Ok(())
    }

    /// `images * scale + offset`, the module's own `hub_input` scaling to [-1, 1].
    fn scale_input(&self, images: &Tensor) -> Tensor {
        let (scale, offset) = (self.spec.input_scale, self.spec.input_offset);
        let data = images.data.iter().map(|&x| x * scale + offset).collect();
        Tensor {
            data,
            shape: images.shape,
        }
    }

    /// 3x3 stride-2 VALID convolution and batch norm, no ReLU.
    fn run_stem(&self, x: &Tensor) -> Tensor {
        let [n, h, w, _] = x.shape;
        let (oh, _, _) = kernels::output_size(h, 3, 2, Padding::Valid);
        let (ow, _, _) = kernels::output_size(w, 3, 2, Padding::Valid);
        let mut out = Tensor::for_overwrite([n, oh, ow, self.stem.cout]);
        kernels::conv2d(
            x.view(),
            &self.stem.w[0],
            3,
            3,
            [2, 2],
            Padding::Valid,
            &self.stem.bias,
            out.view_mut(),
        );
        out
    }

    /// ReLU, global average, then the logits layer.
    fn final_layer(&self, last: &CellOutput) -> Outputs {
        let [n, _, _, c] = last.shape();
        let mut features = vec![0.0; n * c];
        let mut c0 = 0;
        for part in &last.parts {
            let cp = part.channels();
            let mut means = vec![0.0; n * cp];
            kernels::global_mean(part.view(), true, &mut means);
            for (b, m) in means.chunks_exact(cp.max(1)).enumerate() {
                features[b * c + c0..][..cp].copy_from_slice(m);
            }
            c0 += cp;
        }
        let logits = self.fc.as_ref().map(|fc| {
            let mut logits = vec![0.0; n * fc.w.n()];
            kernels::dense(&features, n, &fc.w, &fc.b, &mut logits);
            logits
        });
        Outputs {
            n,
            features,
            logits,
        }
    }
}

fn load_cells(loader: &Loader, spec: &NetworkSpec) -> Result<Vec<CellLayer>, ForwardError> {
    let [h, w] = spec.image_size;
    let (sh, _, _) = kernels::output_size(h, 3, 2, Padding::Valid);
    let (sw, _, _) = kernels::output_size(w, 3, 2, Padding::Valid);
    // Shapes of every output so far: the stem, then each cell.
    let mut shapes: Vec<[usize; 3]> = vec![[sh, sw, spec.stem_filters]];
    // How many parts each output comes in (see `CellOutput`).
    let mut parts: Vec<usize> = vec![1];
    let mut cells = Vec::with_capacity(spec.cells.len());
    for layout in &spec.cells {
        let input_shape = shapes.get(layout.input).copied();
        let expected = [
            layout.input_hw[0],
            layout.input_hw[1],
            layout.input_channels,
        ];
        let computed = |i: usize| i < shapes.len();
        if input_shape != Some(expected)
            || !computed(layout.input)
            || layout.prev.is_some_and(|p| !computed(p))
        {
            return Err(loader.unsupported(format!(
                "{}: the network description's input {:?} does not follow the cells before it ({:?})",
                layout.scope, expected, input_shape
            )));
        }
        // Strides divide spatial sizes; the description comes from a file and may say 0.
        if layout.stride == 0 {
            return Err(loader.unsupported(format!(
                "{}: the network description gives the cell stride 0",
                layout.scope
            )));
        }
        let prev_shape = layout.prev.and_then(|p| shapes.get(p).copied());
        let genotype = match layout.kind {
            CellKind::Normal => &spec.genotype.normal,
            CellKind::Stem | CellKind::Reduction => &spec.genotype.reduction,
        };
        let net_parts = parts.get(layout.input).copied().unwrap_or(1);
        let prev_parts = layout
            .prev
            .and_then(|p| parts.get(p).copied())
            .unwrap_or(net_parts);
        let cell = CellLayer::load(
            loader,
            layout,
            genotype,
            prev_shape,
            [net_parts, prev_parts],
        )?;
        parts.push(cell.output_parts());
        shapes.push([
            layout.output_hw[0],
            layout.output_hw[1],
            layout.output_channels,
        ]);
        cells.push(cell);
    }
    Ok(cells)
}

/// The feature vector is the last cell's channels; a description that says otherwise (or has
/// no cells) is refused here rather than failing inside a kernel.
fn check_features(
    loader: &Loader,
    spec: &NetworkSpec,
    cells: &[CellLayer],
) -> Result<(), ForwardError> {
    let last = cells
        .last()
        .ok_or_else(|| loader.unsupported("the network description has no cells"))?;
    if last.layout.output_channels != spec.num_features {
        return Err(loader.unsupported(format!(
            "the network description says {} features but its last cell {} gives {}",
            spec.num_features, last.layout.scope, last.layout.output_channels
        )));
    }
    Ok(())
}

fn load_dense(loader: &Loader, features: usize, classes: usize) -> Result<Dense, ForwardError> {
    let head = &conventions().head;
    let why = "a classification network ends in a fully connected layer";
    let (_, w) = loader.tensor(&head.fc_weights, &[Some(features), Some(classes)], why)?;
    let (_, b) = loader.tensor(&head.fc_biases, &[Some(classes)], why)?;
    Ok(Dense {
        w: PackedWeights::new(features, classes, &w),
        b,
    })
}

/// For each output (0 = stem, k = cell k-1), the index of the last cell that reads it; the
/// last cell's own output, read by the final layer, is never dropped.
fn last_uses(spec: &NetworkSpec) -> Vec<usize> {
    let mut last = vec![0usize; spec.cells.len() + 1];
    for (k, layout) in spec.cells.iter().enumerate() {
        for i in std::iter::once(layout.input).chain(layout.prev) {
            if let Some(slot) = last.get_mut(i) {
                *slot = k;
            }
        }
    }
    if let Some(final_output) = last.last_mut() {
        *final_output = usize::MAX;
    }
    last
}
