//! Business KPIs per model version and window, from counts the store computes
//! (`vigil_store::queries::kpi_counts`): what product owners read next to the model metrics.

use serde::Serialize;

/// KPIs of one model version in one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kpis {
    /// Inferences served.
    pub volume: u64,
    /// Distinct units served.
    pub units: u64,
    /// Converted units ÷ units (0 when no units).
    pub conversion_rate: f64,
    /// Revenue ÷ units (0 when no units).
    pub revenue_per_unit: f64,
    /// Cost of 1,000 inferences (0 when no inferences).
    pub cost_per_1k_inferences: f64,
}

impl Kpis {
    pub fn from_counts(
        inferences: u64,
        units: u64,
        converted_units: u64,
        revenue: f64,
        cost: f64,
    ) -> Kpis {
        let per_unit = |x: f64| if units == 0 { 0.0 } else { x / units as f64 };
        Kpis {
            volume: inferences,
            units,
            conversion_rate: per_unit(converted_units as f64),
            revenue_per_unit: per_unit(revenue),
            cost_per_1k_inferences: if inferences == 0 {
                0.0
            } else {
                cost / inferences as f64 * 1000.0
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Kpis;

    #[test]
    fn kpis_from_counts() {
        let k = Kpis::from_counts(4000, 1000, 50, 1250.0, 1.6);
        assert_eq!(k.conversion_rate, 0.05);
        assert_eq!(k.revenue_per_unit, 1.25);
        assert!((k.cost_per_1k_inferences - 0.4).abs() < 1e-12);
        let empty = Kpis::from_counts(0, 0, 0, 0.0, 0.0);
        assert_eq!(
            (
                empty.conversion_rate,
                empty.revenue_per_unit,
                empty.cost_per_1k_inferences
            ),
            (0.0, 0.0, 0.0)
        );
    }
}
