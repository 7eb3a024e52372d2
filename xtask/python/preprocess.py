"""The AmoebaNet evaluation preprocessing, done by TensorFlow itself.

decode -> float in [0,1] -> central_crop(0.875) -> resize_bilinear to the
module's size with align_corners=False (and TF1's half_pixel_centers=False).
This is the eval path of the official inception_preprocessing used with hub
modules (amoebanet.md §5); the module does the [0,1] -> [-1,1] scaling.
"""

import numpy as np
import tensorflow as tf

v1 = tf.compat.v1

CENTRAL_FRACTION = 0.875


def preprocess_files(paths, height, width):
    """Returns (decoded uint8 list, preprocessed float32 [N,H,W,3])."""
    decoded, out = [], []
    with tf.Graph().as_default():
        data = v1.placeholder(tf.string, [])
        raw = tf.io.decode_image(data, channels=3, expand_animations=False)
        image = tf.image.convert_image_dtype(raw, tf.float32)
        image = tf.image.central_crop(image, central_fraction=CENTRAL_FRACTION)
        image = v1.image.resize_bilinear(image[None], [height, width], align_corners=False)
        with v1.Session() as sess:
            for p in paths:
                with open(p, "rb") as f:
                    r, img = sess.run([raw, image], {data: f.read()})
                decoded.append(r)
                out.append(img[0])
    return decoded, np.stack(out).astype(np.float32)
