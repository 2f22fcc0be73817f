//! Folding a batch of sales into the few changes Valkey has to make.
//!
//! A batch of thousands of sales touches four categories and a handful of
//! products, so the consumer sends per-category sums, per-product unit deltas,
//! the batch's price extremes and the price points of the tracked product, not
//! one command per sale. All sums are integers (cents and units), so the result
//! does not depend on how sales were split into batches.

use std::collections::BTreeMap;

use blackfriday_proto::Category;
use blackfriday_proto::record::Sale;
use serde::Serialize;

/// The carnet-derived part of the configuration: whose price series to keep.
#[derive(Clone, Debug)]
pub struct CarnetSettings {
    pub carnet: String,
    pub category: Category,
    /// A fixed product to track; when absent, the first product of the
    /// category that any consumer sees becomes the tracked one.
    pub product: Option<String>,
}

/// Offsets of one partition covered by a batch: `[first, next)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionRange {
    pub partition: i32,
    pub first: i64,
    pub next: i64,
}

#[derive(Serialize, Debug)]
pub struct Payload {
    topic: String,
    /// `[partition, first, next]`.
    offsets: Vec<[String; 3]>,
    categories: Vec<CategoryDelta>,
    /// `[category, product, units]`.
    products: Vec<[String; 3]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    carnet: Option<CarnetDelta>,
    series_length: String,
    stats: StatsDelta,
}

#[derive(Serialize, Debug)]
struct CategoryDelta {
    name: &'static str,
    ventas: String,
    unidades: String,
    precio_total_centimos: String,
    importe_centimos: String,
    max: Extreme,
    min: Extreme,
}

#[derive(Serialize, Debug, Clone)]
struct Extreme {
    centimos: String,
    precio: String,
    producto: String,
    categoria: &'static str,
}

#[derive(Serialize, Debug)]
struct CarnetDelta {
    carnet: String,
    categoria: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    producto_fijo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidato: Option<String>,
    /// `[product, timestamp_ms, precio, venta_id]`, oldest first per product.
    puntos: Vec<[String; 4]>,
}

#[derive(Serialize, Debug)]
struct StatsDelta {
    ventas: String,
    unidades: String,
    importe_centimos: String,
    dead_letters: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp_min_ms: Option<String>,
}

#[derive(Default)]
struct CategorySums {
    sales: i64,
    units: i64,
    price_cents: i64,
    amount_cents: i64,
    max: Option<(i64, String)>,
    min: Option<(i64, String)>,
}

/// Formats cents as a decimal amount: 1250 → "12.50".
pub fn cents_to_text(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// What the batch must change in Valkey.
pub struct BatchInput<'a> {
    pub topic: &'a str,
    pub ranges: &'a [PartitionRange],
    pub sales: &'a [Sale],
    pub dead_letters: usize,
    pub carnet: Option<&'a CarnetSettings>,
    /// The tracked product as last reported by Valkey, if known.
    pub tracked_product: Option<&'a str>,
    pub series_length: usize,
}

pub fn build_payload(input: &BatchInput<'_>) -> Payload {
    let mut categories: BTreeMap<Category, CategorySums> = BTreeMap::new();
    let mut products: BTreeMap<(Category, &str), i64> = BTreeMap::new();
    let mut units_total = 0i64;
    let mut amount_total = 0i64;
    for sale in input.sales {
        let sums = categories.entry(sale.category).or_default();
        let amount = sale.price_cents * i64::from(sale.quantity);
        sums.sales += 1;
        sums.units += i64::from(sale.quantity);
        sums.price_cents += sale.price_cents;
        sums.amount_cents += amount;
        if sums
            .max
            .as_ref()
            .is_none_or(|(cents, _)| sale.price_cents > *cents)
        {
            sums.max = Some((sale.price_cents, sale.product_id.clone()));
        }
        if sums
            .min
            .as_ref()
            .is_none_or(|(cents, _)| sale.price_cents < *cents)
        {
            sums.min = Some((sale.price_cents, sale.product_id.clone()));
        }
        *products
            .entry((sale.category, sale.product_id.as_str()))
            .or_default() += i64::from(sale.quantity);
        units_total += i64::from(sale.quantity);
        amount_total += amount;
    }

    let extreme = |category: Category, (cents, product): (i64, String)| Extreme {
        centimos: cents.to_string(),
        precio: cents_to_text(cents),
        producto: product,
        categoria: category.name(),
    };
    let category_deltas = categories
        .into_iter()
        .filter_map(|(category, sums)| {
            Some(CategoryDelta {
                name: category.name(),
                ventas: sums.sales.to_string(),
                unidades: sums.units.to_string(),
                precio_total_centimos: sums.price_cents.to_string(),
                importe_centimos: sums.amount_cents.to_string(),
                max: extreme(category, sums.max?),
                min: extreme(category, sums.min?),
            })
        })
        .collect();

    Payload {
        topic: input.topic.to_string(),
        offsets: input
            .ranges
            .iter()
            .map(|r| {
                [
                    r.partition.to_string(),
                    r.first.to_string(),
                    r.next.to_string(),
                ]
            })
            .collect(),
        categories: category_deltas,
        products: products
            .into_iter()
            .map(|((category, product), units)| {
                [
                    category.name().to_string(),
                    product.to_string(),
                    units.to_string(),
                ]
            })
            .collect(),
        carnet: input.carnet.map(|settings| carnet_delta(input, settings)),
        series_length: input.series_length.to_string(),
        stats: StatsDelta {
            ventas: input.sales.len().to_string(),
            unidades: units_total.to_string(),
            importe_centimos: amount_total.to_string(),
            dead_letters: input.dead_letters.to_string(),
            timestamp_min_ms: input
                .sales
                .iter()
                .map(|s| s.timestamp_ms)
                .min()
                .map(|t| t.to_string()),
        },
    }
}

/// The price points to add. When the tracked product is known only its points
/// travel; before that, the newest `series_length` points of every product of
/// the category do, and the script keeps those of whichever product wins.
fn carnet_delta(input: &BatchInput<'_>, settings: &CarnetSettings) -> CarnetDelta {
    let tracked = settings.product.as_deref().or(input.tracked_product);
    let in_category = input
        .sales
        .iter()
        .filter(|s| s.category == settings.category);
    let mut per_product: BTreeMap<&str, Vec<&Sale>> = BTreeMap::new();
    for sale in in_category {
        if tracked.is_none_or(|product| product == sale.product_id) {
            per_product
                .entry(sale.product_id.as_str())
                .or_default()
                .push(sale);
        }
    }
    let candidate = match tracked {
        Some(_) => None,
        None => input
            .sales
            .iter()
            .find(|s| s.category == settings.category)
            .map(|s| s.product_id.clone()),
    };
    let mut points = Vec::new();
    for (product, mut sales) in per_product {
        sales.sort_by_key(|s| s.timestamp_ms);
        let newest = sales.len().saturating_sub(input.series_length);
        for sale in &sales[newest..] {
            points.push([
                product.to_string(),
                sale.timestamp_ms.to_string(),
                cents_to_text(sale.price_cents),
                sale.sale_id.clone(),
            ]);
        }
    }
    CarnetDelta {
        carnet: settings.carnet.clone(),
        categoria: settings.category.name(),
        producto_fijo: settings.product.clone(),
        candidato: candidate,
        puntos: points,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale(id: u32, category: Category, product: &str, cents: i64, quantity: i32) -> Sale {
        Sale {
            sale_id: format!("s{id}"),
            category,
            product_id: product.into(),
            price_cents: cents,
            quantity,
            timestamp_ms: 1_000 + i64::from(id),
        }
    }

    #[test]
    fn sums_are_per_category_and_exact() {
        let sales = vec![
            sale(1, Category::Ropa, "camisa", 1999, 2),
            sale(2, Category::Ropa, "pantalon", 3550, 1),
            sale(3, Category::Hogar, "lampara", 1000, 5),
            sale(4, Category::Ropa, "camisa", 10, 3),
        ];
        let ranges = [PartitionRange {
            partition: 2,
            first: 10,
            next: 15,
        }];
        let payload = build_payload(&BatchInput {
            topic: "ventas",
            ranges: &ranges,
            sales: &sales,
            dead_letters: 1,
            carnet: None,
            tracked_product: None,
            series_length: 100,
        });
        let json = serde_json::to_value(&payload).unwrap();
        assert_eq!(json["offsets"][0], serde_json::json!(["2", "10", "15"]));
        let ropa = &json["categories"][0];
        assert_eq!(ropa["name"], "Ropa");
        assert_eq!(ropa["ventas"], "3");
        assert_eq!(ropa["unidades"], "6");
        assert_eq!(
            ropa["precio_total_centimos"],
            (1999 + 3550 + 10).to_string()
        );
        assert_eq!(
            ropa["importe_centimos"],
            (1999 * 2 + 3550 + 10 * 3).to_string()
        );
        assert_eq!(ropa["max"]["producto"], "pantalon");
        assert_eq!(ropa["max"]["precio"], "35.50");
        assert_eq!(ropa["min"]["precio"], "0.10");
        assert_eq!(json["categories"][1]["name"], "Hogar");
        assert!(
            json["products"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!(["Ropa", "camisa", "5"]))
        );
        assert_eq!(json["stats"]["dead_letters"], "1");
        assert_eq!(json["stats"]["timestamp_min_ms"], "1001");
        assert!(json.get("carnet").is_none());
    }

    #[test]
    fn carnet_points_follow_the_tracked_product_and_are_bounded() {
        let sales: Vec<Sale> = (0..10)
            .map(|i| {
                sale(
                    i,
                    Category::Hogar,
                    if i % 2 == 0 { "a" } else { "b" },
                    100 + i64::from(i),
                    1,
                )
            })
            .collect();
        let settings = CarnetSettings {
            carnet: "201900006".into(),
            category: Category::Hogar,
            product: None,
        };
        let mut input = BatchInput {
            topic: "ventas",
            ranges: &[],
            sales: &sales,
            dead_letters: 0,
            carnet: Some(&settings),
            tracked_product: None,
            series_length: 3,
        };
        let unknown = serde_json::to_value(build_payload(&input)).unwrap();
        assert_eq!(unknown["carnet"]["candidato"], "a");
        assert_eq!(
            unknown["carnet"]["puntos"].as_array().unwrap().len(),
            6,
            "3 newest of a and of b"
        );

        input.tracked_product = Some("b");
        let known = serde_json::to_value(build_payload(&input)).unwrap();
        let points = known["carnet"]["puntos"].as_array().unwrap();
        assert_eq!(points.len(), 3);
        assert!(points.iter().all(|p| p[0] == "b"));
        assert_eq!(points[2][1], "1009");
        assert_eq!(points[2][2], "1.09");
        assert_eq!(points[2][3], "s9");
        assert!(known["carnet"].get("candidato").is_none());
    }

    #[test]
    fn cents_format() {
        assert_eq!(cents_to_text(1250), "12.50");
        assert_eq!(cents_to_text(7), "0.07");
        assert_eq!(cents_to_text(100_000), "1000.00");
    }
}
