//! Small helpers that write one metric family through prometheus-client's encoder,
//! so each collector reads as a list of series rather than encoder plumbing.
//!
//! A family is written even when it has no series yet, so `# HELP` and `# TYPE`
//! tell a reader (and `onebox top`) that it exists.

use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// A series' labels: fixed names, values from short fixed lists.
pub(crate) type Labels<'a> = Vec<(&'static str, &'a str)>;

/// Buckets `(upper bound, count in that bucket alone)`, the sum and the count.
pub(crate) type HistogramValue = (Vec<(f64, u64)>, f64, u64);

/// A counter family; `name` without the `_total` the encoder adds.
pub(crate) fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Labels, u64)],
) -> std::fmt::Result {
    let mut metric = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        if labels.is_empty() {
            metric.encode_counter::<NoLabelSet, _, u64>(value, None)?;
        } else {
            metric
                .encode_family(labels)?
                .encode_counter::<NoLabelSet, _, u64>(value, None)?;
        }
    }
    Ok(())
}

/// A gauge family.
pub(crate) fn gauge<V: EncodeGaugeValue>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Labels, V)],
) -> std::fmt::Result {
    let mut metric = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in series {
        if labels.is_empty() {
            metric.encode_gauge(value)?;
        } else {
            metric.encode_family(labels)?.encode_gauge(value)?;
        }
    }
    Ok(())
}

/// A histogram family.
pub(crate) fn histogram(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Labels, HistogramValue)],
) -> std::fmt::Result {
    let mut metric = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, (buckets, sum, count)) in series {
        if labels.is_empty() {
            metric.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
        } else {
            metric
                .encode_family(labels)?
                .encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
        }
    }
    Ok(())
}

/// A counter family of one unlabelled series with a fractional value (CPU seconds).
pub(crate) fn counter_f64(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> std::fmt::Result {
    e.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}
