"""The streaming calibration pass on the bundled demo: what it records equals a one-shot computation."""

from __future__ import annotations

import numpy as np
import pytest

from q8studio.core.calibrate import collect_statistics, tensors_to_calibrate, with_outputs
from q8studio.core.data import load_data
from q8studio.core.demo import demo_assets
from q8studio.core.model import load_model
from q8studio.core.session import cpu_session
from q8studio.core.stats import collect_tensor_stats


@pytest.mark.parametrize("histogram_values", [0, 1000])
def test_streamed_pass_equals_one_shot_statistics_of_every_activation(histogram_values: int) -> None:
    """Batches of 8 through the worker thread give, bit for bit, the statistics of all samples at once,
    with every value binned (0) or a sample of about 1,000 of each sample's 4,096 values."""
    demo = demo_assets()
    model = load_model(demo.model)
    data = load_data(demo.calibration, model).limited(37)  # not a multiple of the batch size
    names = tensors_to_calibrate(model.proto)

    streamed = collect_statistics(model, data, names=names, histogram_values=histogram_values)

    all_at_once = next(data.batches(37))
    everything = dict(zip(names, cpu_session(with_outputs(model.proto, names)).run(names, all_at_once)))
    for name in names:
        one_shot = collect_tensor_stats([everything[name]], name=name, values_per_sample=histogram_values)
        got = streamed[name]
        assert (got.count, got.min, got.max, got.bound, got.stride) == (
            one_shot.count, one_shot.min, one_shot.max, one_shot.bound, one_shot.stride)
        np.testing.assert_array_equal(got.hist, one_shot.hist)
        per_sample = everything[name][0].size
        assert got.count == 37 * per_sample
        assert (got.stride > 1) == (0 < histogram_values < per_sample)
