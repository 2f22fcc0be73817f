//! The sales the load generators send: the same categories, products, price
//! ranges and quantities as `locust/locustfile.py`, drawn from a seeded RNG so
//! that a run can be repeated.

use blackfriday_proto::Category;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// `(category, product, lowest price, highest price)`.
pub const PRODUCTS: [(Category, &str, f64, f64); 20] = [
    (Category::Electronica, "laptop-gamer", 800.0, 2500.0),
    (Category::Electronica, "smartphone-x", 300.0, 1200.0),
    (Category::Electronica, "audifonos-bt", 20.0, 200.0),
    (Category::Electronica, "smart-tv-55", 400.0, 1500.0),
    (Category::Electronica, "tablet-10", 150.0, 600.0),
    (Category::Ropa, "chaqueta-invierno", 40.0, 200.0),
    (Category::Ropa, "jeans-slim", 20.0, 90.0),
    (Category::Ropa, "tenis-running", 50.0, 180.0),
    (Category::Ropa, "camiseta-basica", 5.0, 30.0),
    (Category::Ropa, "vestido-fiesta", 30.0, 250.0),
    (Category::Hogar, "licuadora-pro", 30.0, 150.0),
    (Category::Hogar, "juego-sabanas", 20.0, 120.0),
    (Category::Hogar, "cafetera-espresso", 60.0, 400.0),
    (Category::Hogar, "aspiradora-robot", 150.0, 700.0),
    (Category::Hogar, "lampara-led", 10.0, 80.0),
    (Category::Belleza, "perfume-floral", 25.0, 180.0),
    (Category::Belleza, "crema-hidratante", 8.0, 60.0),
    (Category::Belleza, "secador-pelo", 20.0, 150.0),
    (Category::Belleza, "kit-maquillaje", 15.0, 120.0),
    (Category::Belleza, "plancha-cabello", 25.0, 160.0),
];

/// One sale as the HTTP API takes it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SaleBody {
    pub categoria: i32,
    pub producto_id: String,
    pub precio: f64,
    pub cantidad_vendida: i32,
}

/// A seeded stream of sales.
pub struct SaleGenerator {
    rng: SmallRng,
}

impl SaleGenerator {
    pub fn new(seed: u64) -> SaleGenerator {
        SaleGenerator {
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    pub fn next_sale(&mut self) -> SaleBody {
        let (category, product, low, high) = PRODUCTS[self.rng.random_range(0..PRODUCTS.len())];
        let cents = self
            .rng
            .random_range((low * 100.0) as i64..=(high * 100.0) as i64);
        // Mostly single items, sometimes a few: like the Locust tasks.
        let quantity = match self.rng.random_range(0..10) {
            0..=5 => 1,
            6..=8 => self.rng.random_range(2..=3),
            _ => self.rng.random_range(4..=10),
        };
        SaleBody {
            categoria: category.number(),
            producto_id: product.to_string(),
            precio: cents as f64 / 100.0,
            cantidad_vendida: quantity,
        }
    }
}
