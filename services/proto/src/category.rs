//! Product categories as the rest of the system names them.

use std::fmt;
use std::str::FromStr;

use crate::pb::CategoriaProducto;

/// One of the four product categories. Unlike [`CategoriaProducto`] it has no
/// "unspecified" value, so holding one means the category is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Electronica,
    Ropa,
    Hogar,
    Belleza,
}

/// The value named no known category.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown category {0:?}: expected 1-4 or one of Electronica, Ropa, Hogar, Belleza")]
pub struct UnknownCategory(pub String);

impl Category {
    pub const ALL: [Category; 4] = [
        Category::Electronica,
        Category::Ropa,
        Category::Hogar,
        Category::Belleza,
    ];

    /// The name used in Valkey keys, dashboards and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Category::Electronica => "Electronica",
            Category::Ropa => "Ropa",
            Category::Hogar => "Hogar",
            Category::Belleza => "Belleza",
        }
    }

    /// The protobuf enum number (1-4).
    pub fn number(self) -> i32 {
        self.to_proto() as i32
    }

    pub fn to_proto(self) -> CategoriaProducto {
        match self {
            Category::Electronica => CategoriaProducto::Electronica,
            Category::Ropa => CategoriaProducto::Ropa,
            Category::Hogar => CategoriaProducto::Hogar,
            Category::Belleza => CategoriaProducto::Belleza,
        }
    }

    /// The category from its protobuf number; 0 and unknown numbers are errors.
    pub fn from_number(number: i64) -> Result<Category, UnknownCategory> {
        match number {
            1 => Ok(Category::Electronica),
            2 => Ok(Category::Ropa),
            3 => Ok(Category::Hogar),
            4 => Ok(Category::Belleza),
            other => Err(UnknownCategory(other.to_string())),
        }
    }

    /// The category a carnet (student id) is assigned by its last digit:
    /// 0-2 Electronica, 3-5 Ropa, 6-7 Hogar, 8-9 Belleza.
    pub fn for_carnet(carnet: &str) -> Option<Category> {
        let digit = carnet.trim().chars().last()?.to_digit(10)?;
        Some(match digit {
            0..=2 => Category::Electronica,
            3..=5 => Category::Ropa,
            6..=7 => Category::Hogar,
            _ => Category::Belleza,
        })
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses a category name, ignoring case and the accent in "Electrónica",
/// or its number written as text ("1").
impl FromStr for Category {
    type Err = UnknownCategory;

    fn from_str(text: &str) -> Result<Category, UnknownCategory> {
        let trimmed = text.trim();
        if let Ok(number) = trimmed.parse::<i64>() {
            return Category::from_number(number);
        }
        let folded = trimmed.to_lowercase().replace('ó', "o");
        Category::ALL
            .into_iter()
            .find(|category| category.name().to_lowercase() == folded)
            .ok_or_else(|| UnknownCategory(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers_and_names() {
        assert_eq!("1".parse(), Ok(Category::Electronica));
        assert_eq!("ropa".parse(), Ok(Category::Ropa));
        assert_eq!("Electrónica".parse(), Ok(Category::Electronica));
        assert_eq!(" BELLEZA ".parse(), Ok(Category::Belleza));
        assert!("0".parse::<Category>().is_err());
        assert!("5".parse::<Category>().is_err());
        assert!("Juguetes".parse::<Category>().is_err());
    }

    #[test]
    fn numbers_round_trip_through_the_proto_enum() {
        for category in Category::ALL {
            assert_eq!(
                Category::from_number(category.number().into()),
                Ok(category)
            );
        }
    }

    #[test]
    fn carnet_last_digit_picks_the_category() {
        let expected = [
            ("201900000", Category::Electronica),
            ("201900002", Category::Electronica),
            ("201900003", Category::Ropa),
            ("201900005", Category::Ropa),
            ("201900006", Category::Hogar),
            ("201900007", Category::Hogar),
            ("201900008", Category::Belleza),
            ("201900009", Category::Belleza),
        ];
        for (carnet, category) in expected {
            assert_eq!(Category::for_carnet(carnet), Some(category), "{carnet}");
        }
        assert_eq!(Category::for_carnet("20190000x"), None);
        assert_eq!(Category::for_carnet(""), None);
    }
}
