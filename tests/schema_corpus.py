"""Schemas for end-to-end structured-output tests on tiny models.

``SCHEMAS`` is a list of ``(name, schema, prompt)``.  Every schema follows the
strict rules of API version 2 (``wafer.protocol.schema_rules``): every object
sets ``additionalProperties: false`` and requires all its properties, ``anyOf``
has at most 5 branches, nesting is at most 5 objects deep, and only supported
keywords appear.  Minimal instances stay short (well under 60 tokens) so the
tests run quickly on a small CPU.
"""

from __future__ import annotations


def obj(properties: dict, **extra) -> dict:
    """A strict object schema: all properties required, no additional ones."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
        **extra,
    }


STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
BOOL = {"type": "boolean"}
NULL = {"type": "null"}
SHORT = {"type": "string", "maxLength": 40}


SCHEMAS: list[tuple[str, dict, str]] = [
    # -- flat objects, one per type ------------------------------------------
    ("flat_string", obj({"name": SHORT}), "Give a name for a pet cat."),
    ("flat_integer", obj({"age": INT}), "How old is a typical adult? Answer with an age."),
    ("flat_number", obj({"price": NUM}), "Give the price of a cup of coffee in dollars."),
    ("flat_boolean", obj({"is_fruit": BOOL}), "Is a tomato a fruit?"),
    (
        "nullable_string",
        obj({"middle_name": {"anyOf": [SHORT, NULL]}}),
        "What is the middle name of a person called John Smith? Use null if unknown.",
    ),
    (
        "mixed_scalars",
        obj({"city": SHORT, "population": INT, "area_km2": NUM, "is_capital": BOOL}),
        "Describe the city of Paris.",
    ),
    # -- enums and const -----------------------------------------------------
    (
        "enum_strings",
        obj({"sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]}}),
        "Classify the sentiment of: 'I love this phone!'",
    ),
    (
        "enum_numbers",
        obj({"rating": {"type": "integer", "enum": [1, 2, 3, 4, 5]}}),
        "Rate the movie Inception from 1 to 5.",
    ),
    (
        "enum_untyped_mixed",
        obj({"answer": {"enum": ["yes", "no", 0, 1, None]}}),
        "Is the sky blue? Answer yes or no.",
    ),
    (
        "const_version",
        obj({"version": {"const": "1.0"}, "status": {"type": "string", "enum": ["ok", "degraded", "down"]}}),
        "Report the status of a healthy web service.",
    ),
    # -- numbers with bounds -------------------------------------------------
    (
        "bounded_numbers",
        obj({"temperature_c": {"type": "number", "minimum": -50, "maximum": 60}, "humidity": {"type": "integer", "minimum": 0, "maximum": 100}}),
        "Give the temperature and humidity on a summer day.",
    ),
    (
        "exclusive_minimum",
        obj({"quantity": {"type": "integer", "exclusiveMinimum": 0}, "unit_price": {"type": "number", "exclusiveMinimum": 0}}),
        "Order some apples: give a quantity and a unit price.",
    ),
    (
        "multiple_of",
        obj({"minutes": {"type": "integer", "minimum": 0, "maximum": 120, "multipleOf": 15}}),
        "How long should a meeting last, in minutes?",
    ),
    # -- string formats and patterns -----------------------------------------
    ("format_date", obj({"date": {"type": "string", "format": "date"}}), "What date is New Year's Day 2025?"),
    ("format_date_time", obj({"starts_at": {"type": "string", "format": "date-time"}}), "When does a meeting on March 3, 2025 at 9am UTC start?"),
    ("format_time", obj({"alarm": {"type": "string", "format": "time"}}), "Set an alarm for seven in the morning."),
    ("format_email", obj({"email": {"type": "string", "format": "email"}}), "Give an email address for Alice at example.com."),
    ("format_uuid", obj({"id": {"type": "string", "format": "uuid"}}), "Generate an identifier for a new user."),
    ("format_ipv4", obj({"host": SHORT, "ip": {"type": "string", "format": "ipv4"}}), "Give the IP address of a local router."),
    (
        "pattern_currency",
        obj({"currency": {"type": "string", "pattern": "^[A-Z]{3}$"}, "amount": NUM}),
        "How much is a train ticket in Japan?",
    ),
    (
        "string_lengths",
        obj({"code": {"type": "string", "minLength": 4, "maxLength": 6}, "label": {"type": "string", "minLength": 1, "maxLength": 20}}),
        "Create a short discount code and label for a sale.",
    ),
    # -- nested objects ------------------------------------------------------
    (
        "user_profile",
        obj({"name": SHORT, "age": INT, "address": obj({"city": SHORT, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}})}),
        "Create a profile for a user who lives in Boston.",
    ),
    (
        "nested_three",
        obj({"company": obj({"name": SHORT, "ceo": obj({"name": SHORT, "since": INT})})}),
        "Describe a technology company and its CEO.",
    ),
    (
        "nested_four",
        obj({"country": obj({"name": SHORT, "region": obj({"name": SHORT, "city": obj({"name": SHORT})})})}),
        "Name a country, one of its regions, and a city there.",
    ),
    (
        "geo_point",
        obj({"lat": {"type": "number", "minimum": -90, "maximum": 90}, "lon": {"type": "number", "minimum": -180, "maximum": 180}}),
        "Give the coordinates of London.",
    ),
    (
        "color_rgb",
        obj({"name": SHORT, "rgb": obj({c: {"type": "integer", "minimum": 0, "maximum": 255} for c in ("r", "g", "b")})}),
        "Give the RGB value of the color orange.",
    ),
    # -- arrays --------------------------------------------------------------
    (
        "array_strings",
        obj({"tags": {"type": "array", "items": {"type": "string", "maxLength": 15}}}),
        "List a few tags for a blog post about cooking.",
    ),
    (
        "array_numbers",
        obj({"scores": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 100}}}),
        "Give three test scores.",
    ),
    (
        "todo_list",
        obj({"todos": {"type": "array", "items": obj({"task": SHORT, "done": BOOL})}}),
        "Make a short to-do list for a Saturday.",
    ),
    (
        "prefix_items_tuple",
        obj({"point": {"type": "array", "prefixItems": [NUM, NUM], "items": False}}),
        "Give an x, y point on a plane.",
    ),
    (
        "prefix_items_mixed",
        obj({"entry": {"type": "array", "prefixItems": [SHORT, INT, BOOL], "items": False}}),
        "Give a name, an age, and whether the person is a student.",
    ),
    # -- anyOf ---------------------------------------------------------------
    (
        "anyof_objects",
        obj({
            "shape": {
                "anyOf": [
                    obj({"kind": {"const": "circle"}, "radius": NUM}),
                    obj({"kind": {"const": "square"}, "side": NUM}),
                ]
            }
        }),
        "Describe a simple geometric shape.",
    ),
    (
        "anyof_scalars",
        obj({"value": {"anyOf": [INT, SHORT, BOOL]}}),
        "Give any value: a number, a word, or true/false.",
    ),
    (
        "anyof_nullable_object",
        obj({"manager": {"anyOf": [obj({"name": SHORT}), NULL]}}),
        "Who is the manager of a new intern? Use null if none.",
    ),
    (
        "api_error",
        obj({"error": obj({"code": {"type": "integer", "minimum": 100, "maximum": 599}, "message": SHORT, "retry_after": {"anyOf": [INT, NULL]}})}),
        "Return an error for a request that was not found.",
    ),
    # -- $ref / $defs --------------------------------------------------------
    (
        "defs_reuse",
        obj(
            {"home": {"$ref": "#/$defs/address"}, "work": {"$ref": "#/$defs/address"}},
            **{"$defs": {"address": obj({"street": SHORT, "city": SHORT})}},
        ),
        "Give a home address and a work address.",
    ),
    (
        "defs_in_array",
        obj(
            {"people": {"type": "array", "items": {"$ref": "#/$defs/person"}}},
            **{"$defs": {"person": obj({"name": SHORT, "age": INT})}},
        ),
        "List two people with their ages.",
    ),
    # -- realistic shapes ----------------------------------------------------
    (
        "movie_recommendation",
        obj({"title": SHORT, "year": {"type": "integer", "minimum": 1900, "maximum": 2030}, "genre": {"type": "string", "enum": ["sci-fi", "drama", "comedy", "horror", "action"]}}),
        "Recommend a science fiction movie.",
    ),
    (
        "invoice",
        obj({
            "invoice_number": SHORT,
            "lines": {"type": "array", "items": obj({"item": SHORT, "qty": {"type": "integer", "minimum": 1}, "price": NUM})},
            "total": NUM,
        }),
        "Write an invoice for two notebooks and one pen.",
    ),
    (
        "weather_report",
        obj({
            "location": SHORT,
            "condition": {"type": "string", "enum": ["sunny", "cloudy", "rain", "snow"]},
            "temp_c": NUM,
            "wind_kph": {"anyOf": [NUM, NULL]},
        }),
        "Give today's weather in Seattle.",
    ),
    (
        "calendar_event",
        obj({"title": SHORT, "date": {"type": "string", "format": "date"}, "start": {"type": "string", "format": "time"}, "attendees": {"type": "array", "items": {"type": "string", "format": "email"}}}),
        "Schedule a team lunch next Friday at noon.",
    ),
    (
        "product_catalog_entry",
        obj({
            "sku": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{4}$"},
            "name": SHORT,
            "price": {"type": "number", "minimum": 0},
            "in_stock": BOOL,
            "dimensions": obj({"w": NUM, "h": NUM}),
        }),
        "Create a catalog entry for a desk lamp.",
    ),
    (
        "recipe",
        obj({
            "name": SHORT,
            "servings": {"type": "integer", "minimum": 1, "maximum": 12},
            "ingredients": {"type": "array", "items": {"type": "string", "maxLength": 30}},
            "vegetarian": BOOL,
        }),
        "Give a simple recipe for pancakes.",
    ),
]
