//! What the dashboard should show, computed from what was sent, and what
//! Valkey actually holds, in one comparable shape.

use std::collections::BTreeMap;

use anyhow::Context;
use blackfriday_proto::Category;
use blackfriday_proto::record::price_to_cents;
use redis::Commands;

use crate::catalog::SaleBody;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CategoryTotals {
    pub sales: i64,
    pub units: i64,
    pub price_cents: i64,
    pub amount_cents: i64,
    pub max_cents: i64,
    pub min_cents: i64,
    pub average_price: String,
    pub average_quantity: String,
    /// Units sold per product of this category.
    pub product_units: BTreeMap<String, i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub sales: i64,
    pub units: i64,
    pub amount_cents: i64,
    pub categories: BTreeMap<String, CategoryTotals>,
    /// Units sold per product, all categories.
    pub product_units: BTreeMap<String, i64>,
    pub max_cents: i64,
    pub min_cents: i64,
}

fn category_name(number: i32) -> String {
    Category::from_number(number.into())
        .map(|c| c.name().to_string())
        .unwrap_or_else(|_| format!("invalid-{number}"))
}

impl Totals {
    /// Adds one sale that the pipeline acknowledged.
    pub fn add(&mut self, sale: &SaleBody) {
        let cents = price_to_cents(sale.precio).unwrap_or_default();
        let quantity = i64::from(sale.cantidad_vendida);
        self.sales += 1;
        self.units += quantity;
        self.amount_cents += cents * quantity;
        let category = self
            .categories
            .entry(category_name(sale.categoria))
            .or_default();
        if category.sales == 0 || cents > category.max_cents {
            category.max_cents = cents;
        }
        if category.sales == 0 || cents < category.min_cents {
            category.min_cents = cents;
        }
        category.sales += 1;
        category.units += quantity;
        category.price_cents += cents;
        category.amount_cents += cents * quantity;
        category.average_price = format!(
            "{:.2}",
            category.price_cents as f64 / category.sales as f64 / 100.0
        );
        category.average_quantity = format!("{:.4}", category.units as f64 / category.sales as f64);
        *category
            .product_units
            .entry(sale.producto_id.clone())
            .or_default() += quantity;
        *self
            .product_units
            .entry(sale.producto_id.clone())
            .or_default() += quantity;
        if self.sales == 1 || cents > self.max_cents {
            self.max_cents = cents;
        }
        if self.sales == 1 || cents < self.min_cents {
            self.min_cents = cents;
        }
    }

    pub fn merge(&mut self, sales: &[SaleBody]) {
        for sale in sales {
            self.add(sale);
        }
    }

    /// Reads the same figures from the keys the consumer maintains.
    pub fn read(connection: &mut redis::Connection) -> anyhow::Result<Totals> {
        let stats: BTreeMap<String, i64> =
            connection.hgetall("bf:stats").context("HGETALL bf:stats")?;
        let mut totals = Totals {
            sales: stats.get("ventas").copied().unwrap_or_default(),
            units: stats.get("unidades").copied().unwrap_or_default(),
            amount_cents: stats.get("importe_centimos").copied().unwrap_or_default(),
            ..Totals::default()
        };
        for category in Category::ALL {
            let key = format!("bf:cat:{}", category.name());
            let fields: BTreeMap<String, String> = connection.hgetall(&key)?;
            if fields.is_empty() {
                continue;
            }
            let int = |name: &str| {
                fields
                    .get(name)
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(-1)
            };
            let extreme =
                |connection: &mut redis::Connection, which: &str| -> anyhow::Result<i64> {
                    let cents: Option<i64> =
                        connection.hget(format!("{key}:precio:{which}"), "centimos")?;
                    Ok(cents.unwrap_or(-1))
                };
            let products: Vec<(String, f64)> =
                connection.zrange_withscores(format!("{key}:productos:unidades"), 0, -1)?;
            let entry = CategoryTotals {
                sales: int("ventas"),
                units: int("unidades"),
                price_cents: int("precio_total_centimos"),
                amount_cents: int("importe_centimos"),
                max_cents: extreme(connection, "max")?,
                min_cents: extreme(connection, "min")?,
                average_price: fields.get("precio_promedio").cloned().unwrap_or_default(),
                average_quantity: fields.get("cantidad_promedio").cloned().unwrap_or_default(),
                product_units: products
                    .into_iter()
                    .map(|(p, units)| (p, units as i64))
                    .collect(),
            };
            totals.categories.insert(category.name().to_string(), entry);
        }
        let products: Vec<(String, f64)> =
            connection.zrange_withscores("bf:productos:unidades", 0, -1)?;
        totals.product_units = products
            .into_iter()
            .map(|(p, units)| (p, units as i64))
            .collect();
        let max: Option<i64> = connection.hget("bf:precio:max", "centimos")?;
        let min: Option<i64> = connection.hget("bf:precio:min", "centimos")?;
        totals.max_cents = max.unwrap_or_default();
        totals.min_cents = min.unwrap_or_default();
        Ok(totals)
    }
}

/// Waits until Valkey counts at least `expected.sales` sales (and
/// `dead_letters` dead letters), lets a second pass for any extra (a duplicate
/// would show up as a surplus), then returns what Valkey holds.
pub fn wait_for_totals(
    connection: &mut redis::Connection,
    expected: &Totals,
    dead_letters: i64,
    timeout: std::time::Duration,
) -> anyhow::Result<Totals> {
    crate::wait_for("Valkey to count every sale", timeout, || {
        let stats: BTreeMap<String, i64> =
            connection.hgetall("bf:stats").map_err(|e| e.to_string())?;
        let sales = stats.get("ventas").copied().unwrap_or_default();
        let letters = stats.get("dead_letters").copied().unwrap_or_default();
        if sales >= expected.sales && letters >= dead_letters {
            Ok(Some(()))
        } else {
            Err(format!(
                "{sales} of {} sales, {letters} of {dead_letters} dead letters",
                expected.sales
            ))
        }
    })?;
    std::thread::sleep(std::time::Duration::from_secs(1));
    Totals::read(connection)
}
