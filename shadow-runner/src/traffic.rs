//! Simulated traffic of a text-intent model (`intent`): assistant and banking requests with the
//! intent each was written for, so shadow runs have realistic inputs with a ground truth.
//!
//! The templates and slot values were written for this project (no dataset text). Deterministic
//! for a seed. With `drift` on, the mix moves towards travel and money-transfer requests and the
//! requests get longer (the `n_words` feature shifts), which the analyzer's monitors notice.

use crate::stats::splitmix64;

/// `(intent, templates)`: the intent is a label of the CLINC150-style intent heads.
const TEMPLATES: &[(&str, &[&str])] = &[
    (
        "balance",
        &[
            "how much money is in my {acct} account",
            "what's the balance of my {acct} account",
            "show me my {acct} balance please",
            "do I have enough in {acct} to cover rent",
        ],
    ),
    (
        "transfer",
        &[
            "transfer {amount} from {acct} to {acct2}",
            "move {amount} into my {acct2} account",
            "send {amount} from {acct} over to {acct2}",
            "can you shift {amount} to {acct2} today",
        ],
    ),
    (
        "card_declined",
        &[
            "why did my card get declined at the {shop}",
            "my card was refused at the {shop} earlier",
            "the {shop} would not take my card, what happened",
        ],
    ),
    (
        "report_lost_card",
        &[
            "I can't find my {card} card anywhere",
            "I think I left my {card} card at the {shop}",
            "my {card} card is lost, what do I do",
        ],
    ),
    (
        "freeze_account",
        &[
            "please freeze my {acct} account right away",
            "lock my {acct} account, something is off",
            "put a hold on my {acct} account",
        ],
    ),
    (
        "interest_rate",
        &[
            "what interest does my {acct} account earn",
            "what's the current rate on {acct}",
            "how much interest am I getting on {acct}",
        ],
    ),
    (
        "pay_bill",
        &[
            "pay my {bill} bill with {acct}",
            "settle the {bill} bill from my {acct} account",
            "I want to pay the {bill} bill now",
        ],
    ),
    (
        "bill_due",
        &[
            "when is my {bill} bill due",
            "what day do I have to pay the {bill} bill",
            "is the {bill} bill due this week",
        ],
    ),
    (
        "credit_score",
        &[
            "what is my credit score today",
            "check my credit score for me",
            "has my credit score changed lately",
        ],
    ),
    (
        "exchange_rate",
        &[
            "how many {currency} do I get for a dollar",
            "what's the exchange rate from dollars to {currency}",
            "convert {amount} into {currency} for me",
        ],
    ),
    (
        "timer",
        &[
            "set a timer for {n} minutes",
            "start a {n} minute timer",
            "count down {n} minutes for the {food}",
        ],
    ),
    (
        "alarm",
        &[
            "set an alarm for {time}",
            "wake me up at {time} tomorrow",
            "I need an alarm at {time}",
        ],
    ),
    (
        "reminder",
        &[
            "remind me to {chore} at {time}",
            "set a reminder to {chore} tonight",
            "don't let me forget to {chore}",
        ],
    ),
    (
        "shopping_list_update",
        &[
            "add {food} to my shopping list",
            "put {food} and {food2} on the grocery list",
            "I need {food} on my shopping list",
        ],
    ),
    (
        "todo_list_update",
        &[
            "add {chore} to my to do list",
            "put {chore} on my list of tasks",
            "my to do list needs {chore} on it",
        ],
    ),
    (
        "calendar",
        &[
            "what do I have on {day}",
            "am I busy on {day} afternoon",
            "what's on my calendar for {day}",
        ],
    ),
    (
        "schedule_meeting",
        &[
            "set up a meeting with {person} on {day}",
            "book a meeting with {person} for {day} at {time}",
            "can you arrange time with {person} on {day}",
        ],
    ),
    (
        "weather",
        &[
            "what's the weather like in {city} today",
            "will it rain in {city} on {day}",
            "how hot will it be in {city} tomorrow",
        ],
    ),
    (
        "directions",
        &[
            "how do I get to {place} from here",
            "give me directions to {place}",
            "what's the fastest route to {place}",
        ],
    ),
    (
        "traffic",
        &[
            "how bad is traffic on the way to {place}",
            "is there traffic heading to {place} right now",
            "will traffic slow me down getting to {place}",
        ],
    ),
    (
        "book_flight",
        &[
            "book a flight to {city} on {day}",
            "find me a plane ticket to {city} next {day}",
            "I need to fly to {city} this {day}",
        ],
    ),
    (
        "book_hotel",
        &[
            "book a hotel in {city} for {n} nights",
            "find me a room in {city} from {day}",
            "reserve a hotel near {place} in {city}",
        ],
    ),
    (
        "flight_status",
        &[
            "is my flight to {city} on time",
            "has my {city} flight been delayed",
            "what's the status of my flight to {city}",
        ],
    ),
    (
        "travel_alert",
        &[
            "are there any travel warnings for {country}",
            "is it safe to travel to {country} right now",
            "any travel advisories for {country}",
        ],
    ),
    (
        "international_visa",
        &[
            "do I need a visa for {country}",
            "what visa do I need to visit {country}",
            "can I enter {country} without a visa",
        ],
    ),
    (
        "translate",
        &[
            "how do you say {phrase} in {language}",
            "translate {phrase} into {language}",
            "what is {phrase} in {language}",
        ],
    ),
    (
        "play_music",
        &[
            "play some {genre} music",
            "put on {genre} for me",
            "I want to listen to {genre}",
        ],
    ),
    (
        "restaurant_reservation",
        &[
            "book a table for {n} at {restaurant}",
            "reserve dinner at {restaurant} for {n} people",
            "get me a table at {restaurant} on {day}",
        ],
    ),
    (
        "recipe",
        &[
            "how do I make {dish}",
            "give me a recipe for {dish}",
            "what's a good way to cook {dish}",
        ],
    ),
    (
        "calories",
        &[
            "how many calories are in {dish}",
            "is {dish} high in calories",
            "calorie count for a serving of {dish}",
        ],
    ),
    (
        "tell_joke",
        &[
            "tell me a joke",
            "say something funny",
            "I could use a joke right now",
            "make me laugh with a joke about {topic}",
        ],
    ),
    (
        "greeting",
        &[
            "hi there",
            "hello, how are you doing",
            "good morning assistant",
            "hey, what's up",
        ],
    ),
    (
        "goodbye",
        &[
            "bye for now",
            "talk to you later",
            "that's all, goodbye",
            "see you tomorrow",
        ],
    ),
    (
        "thank_you",
        &[
            "thanks a lot",
            "thank you for the help",
            "appreciate it, thanks",
            "thanks, that was useful",
        ],
    ),
    (
        "oos",
        &[
            "what is the airspeed of a {animal}",
            "write a poem about {topic}",
            "who painted the ceiling of {place}",
            "how many {animal}s live in {country}",
        ],
    ),
    (
        "change_volume",
        &[
            "turn the volume up",
            "make it quieter please",
            "set the volume to {n}",
        ],
    ),
    (
        "find_phone",
        &[
            "help me find my phone",
            "where did I leave my phone",
            "make my phone ring so I can find it",
        ],
    ),
    (
        "uber",
        &[
            "get me a ride to {place}",
            "call an uber to {place}",
            "I need a car to {place} in {n} minutes",
        ],
    ),
];

const ACCOUNTS: &[&str] = &["checking", "savings", "joint", "business", "college fund"];
const AMOUNTS: &[&str] = &[
    "$50",
    "200 dollars",
    "$1,200",
    "75 bucks",
    "three hundred dollars",
    "$19.99",
];
const SHOPS: &[&str] = &[
    "gas station",
    "grocery store",
    "pharmacy",
    "bookshop",
    "airport cafe",
    "hardware store",
];
const CARDS: &[&str] = &["debit", "credit", "visa", "travel", "store"];
const BILLS: &[&str] = &["electric", "water", "phone", "internet", "gas", "insurance"];
const CURRENCIES: &[&str] = &["euros", "yen", "pesos", "pounds", "rupees", "francs"];
const TIMES: &[&str] = &[
    "6:30 am",
    "7 in the morning",
    "noon",
    "5 pm",
    "9:15",
    "half past eight",
];
const CHORES: &[&str] = &[
    "call the plumber",
    "water the plants",
    "renew my passport",
    "pick up the kids",
    "return the library books",
    "book a dentist visit",
];
const FOODS: &[&str] = &[
    "milk",
    "eggs",
    "bread",
    "coffee beans",
    "spinach",
    "olive oil",
    "bananas",
    "rice",
];
const DAYS: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "the weekend",
];
const PEOPLE: &[&str] = &[
    "sam",
    "the design team",
    "my manager",
    "priya",
    "the landlord",
    "dr. okafor",
];
const CITIES: &[&str] = &[
    "chicago", "lisbon", "tokyo", "nairobi", "denver", "montreal", "seoul", "lima",
];
const PLACES: &[&str] = &[
    "the airport",
    "the train station",
    "downtown",
    "the museum",
    "the stadium",
    "city hall",
];
const COUNTRIES: &[&str] = &["japan", "brazil", "kenya", "iceland", "vietnam", "morocco"];
const PHRASES: &[&str] = &[
    "good night",
    "where is the bathroom",
    "thank you very much",
    "how much does this cost",
];
const LANGUAGES: &[&str] = &[
    "spanish",
    "german",
    "korean",
    "italian",
    "swahili",
    "portuguese",
];
const GENRES: &[&str] = &[
    "jazz",
    "classic rock",
    "lo-fi",
    "country",
    "hip hop",
    "piano",
];
const RESTAURANTS: &[&str] = &[
    "the corner bistro",
    "luigi's",
    "the noodle bar",
    "green garden",
    "harbor grill",
];
const DISHES: &[&str] = &[
    "lasagna",
    "banana bread",
    "chicken curry",
    "pad thai",
    "a veggie burger",
    "pancakes",
];
const TOPICS: &[&str] = &["cats", "the ocean", "autumn", "computers", "my commute"];
const ANIMALS: &[&str] = &["swallow", "penguin", "giraffe", "octopus", "hedgehog"];

/// Intents that become more frequent under drift.
const DRIFT_INTENTS: &[&str] = &[
    "transfer",
    "book_flight",
    "book_hotel",
    "flight_status",
    "exchange_rate",
    "international_visa",
    "travel_alert",
];

/// Tails added to requests under drift (longer, chattier messages).
const DRIFT_TAILS: &[&str] = &[
    " because I am travelling for work next month and need everything sorted out beforehand",
    " as soon as possible please, I'm in a bit of a hurry and on my phone",
    " and could you also tell me if there is anything else I should know about it",
];

/// The production model of the simulated `intent` traffic, as one `[[shadow.models]]` entry
/// (models from `scripts/models/fetch.sh`): MiniLM-L6 with a logistic-regression head.
pub const INTENT_PRODUCTION: &str = r#"name = "intent"
version = "l6+logreg"
role = "production"
path = "all-MiniLM-L6-v2"
head = { path = "intent-heads/logistic_regression.safetensors", labels = "intent-heads/labels.json", kind = "softmax" }
"#;

/// `[[shadow.models]]` for the simulated `intent` traffic: production plus two candidates, one
/// close to it (the same encoder with a linear SVC head) and one far off (MiniLM-L3 under the
/// L6's head). Used by `vigil demo --with-models` and the shadow tests.
pub const INTENT_SHADOW_MODELS: &str = r#"
[[shadow.models]]
name = "intent"
version = "l6+logreg"
role = "production"
path = "all-MiniLM-L6-v2"
head = { path = "intent-heads/logistic_regression.safetensors", labels = "intent-heads/labels.json", kind = "softmax" }

[[shadow.models]]
name = "intent"
version = "l6+svc"
role = "candidate"
path = "all-MiniLM-L6-v2"
head = { path = "intent-heads/linear_svc.safetensors", labels = "intent-heads/labels.json", kind = "decision_scores" }

[[shadow.models]]
name = "intent"
version = "l3+logreg"
role = "candidate"
path = "paraphrase-MiniLM-L3-v2"
head = { path = "intent-heads/logistic_regression.safetensors", labels = "intent-heads/labels.json", kind = "softmax" }
"#;

/// One simulated request: its text and the intent it was written for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentRequest {
    /// The request text.
    pub text: String,
    /// The intent it was written for (ground truth).
    pub intent: &'static str,
}

/// Deterministic generator of [`IntentRequest`]s.
#[derive(Debug, Clone)]
pub struct IntentTraffic {
    rng: u64,
    drift: bool,
}

impl IntentTraffic {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: seed ^ 0x001D_7E17,
            drift: false,
        }
    }

    /// Turns drift on or off.
    pub fn set_drift(&mut self, on: bool) {
        self.drift = on;
    }

    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[(splitmix64(&mut self.rng) % items.len() as u64) as usize]
    }

    /// The next request.
    pub fn next_request(&mut self) -> IntentRequest {
        let (intent, templates) = if self.drift && splitmix64(&mut self.rng) % 100 < 60 {
            let want = self.pick(DRIFT_INTENTS);
            TEMPLATES
                .iter()
                .find(|(i, _)| *i == want)
                .copied()
                .unwrap_or(TEMPLATES[0])
        } else {
            TEMPLATES[(splitmix64(&mut self.rng) % TEMPLATES.len() as u64) as usize]
        };
        let template = self.pick(templates);
        let mut text = String::with_capacity(template.len() + 16);
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            text.push_str(&rest[..open]);
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            let slot = &rest[open + 1..open + close];
            let n = (splitmix64(&mut self.rng) % 44 + 2).to_string();
            let value = match slot {
                "acct" | "acct2" => self.pick(ACCOUNTS),
                "amount" => self.pick(AMOUNTS),
                "shop" => self.pick(SHOPS),
                "card" => self.pick(CARDS),
                "bill" => self.pick(BILLS),
                "currency" => self.pick(CURRENCIES),
                "time" => self.pick(TIMES),
                "chore" => self.pick(CHORES),
                "food" | "food2" => self.pick(FOODS),
                "day" => self.pick(DAYS),
                "person" => self.pick(PEOPLE),
                "city" => self.pick(CITIES),
                "place" => self.pick(PLACES),
                "country" => self.pick(COUNTRIES),
                "phrase" => self.pick(PHRASES),
                "language" => self.pick(LANGUAGES),
                "genre" => self.pick(GENRES),
                "restaurant" => self.pick(RESTAURANTS),
                "dish" => self.pick(DISHES),
                "topic" => self.pick(TOPICS),
                "animal" => self.pick(ANIMALS),
                _ => n.as_str(),
            };
            text.push_str(value);
            rest = &rest[open + close + 1..];
        }
        text.push_str(rest);
        if self.drift && splitmix64(&mut self.rng) % 100 < 70 {
            text.push_str(self.pick(DRIFT_TAILS));
        }
        IntentRequest { text, intent }
    }
}

/// An inference event (JSON, the collector's contract) for `req` served by `model@version` with
/// production's `(label, score)`. Features: `n_words` (numeric) and `channel` (categorical).
#[allow(clippy::too_many_arguments)]
pub fn inference_json(
    event_id: &str,
    ts_ms: i64,
    model: &str,
    version: &str,
    unit_id: &str,
    req: &IntentRequest,
    prediction: (&str, f32),
    latency_ms: f64,
) -> String {
    let channel = if event_id
        .bytes()
        .map(u32::from)
        .sum::<u32>()
        .is_multiple_of(3)
    {
        "web"
    } else {
        "app"
    };
    serde_json::json!({
        "event_id": event_id,
        "ts": ts_ms,
        "model": model,
        "version": version,
        "unit_id": unit_id,
        "features": {"n_words": req.text.split_whitespace().count(), "channel": channel},
        "prediction": {"score": prediction.1, "label": prediction.0},
        "latency_ms": latency_ms,
        "input": req.text,
    })
    .to_string()
}

/// The ground-truth outcome of an inference: `label:<intent>` = 1 (what a labelling queue or a
/// user's correction would send).
pub fn truth_json(
    inference_id: &str,
    ts_ms: i64,
    model: &str,
    unit_id: &str,
    intent: &str,
) -> String {
    serde_json::json!({
        "event_id": format!("{inference_id}-truth"),
        "ts": ts_ms,
        "unit_id": unit_id,
        "model": model,
        "inference_id": inference_id,
        "name": format!("label:{intent}"),
        "value": 1.0,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_every_slot_and_is_deterministic() {
        let mut a = IntentTraffic::new(1);
        let mut b = IntentTraffic::new(1);
        let mut distinct = std::collections::HashSet::new();
        for _ in 0..2000 {
            let r = a.next_request();
            assert_eq!(r, b.next_request());
            assert!(!r.text.contains('{') && !r.text.contains('}'), "{}", r.text);
            distinct.insert(r.text);
        }
        assert!(distinct.len() > 500, "{} distinct", distinct.len());
    }

    #[test]
    fn drift_shifts_the_mix_and_the_length() {
        let words = |drift: bool| {
            let mut t = IntentTraffic::new(3);
            t.set_drift(drift);
            let reqs: Vec<IntentRequest> = (0..2000).map(|_| t.next_request()).collect();
            let travel = reqs
                .iter()
                .filter(|r| DRIFT_INTENTS.contains(&r.intent))
                .count();
            let words: usize = reqs.iter().map(|r| r.text.split_whitespace().count()).sum();
            (travel, words as f64 / reqs.len() as f64)
        };
        let (quiet_travel, quiet_words) = words(false);
        let (drift_travel, drift_words) = words(true);
        assert!(
            drift_travel > 3 * quiet_travel,
            "{quiet_travel} -> {drift_travel}"
        );
        assert!(
            drift_words > quiet_words + 5.0,
            "{quiet_words} -> {drift_words}"
        );
    }
}
