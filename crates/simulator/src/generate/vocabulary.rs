//! The fixed vocabularies generation draws from: roles, names, domains, group names and the
//! source catalog.

pub(crate) const WORKSPACE_OWNER: &str = "Workspace Owner";
pub(crate) const MINIMAL_ACCESS: &str = "Minimal Workspace Access";
pub(crate) const SOURCE_ADMIN: &str = "Source Admin";
pub(crate) const SOURCE_READ_ONLY: &str = "Source Read-only";

pub(crate) const ROLES: &[(&str, &str)] = &[
    (
        WORKSPACE_OWNER,
        "Full read and edit access to the workspace, including members, billing and every resource.",
    ),
    (
        MINIMAL_ACCESS,
        "Access to the workspace without access to any resource; required to sign in.",
    ),
    (
        SOURCE_ADMIN,
        "Edit access to the assigned sources, their settings, destinations and debugger.",
    ),
    (
        SOURCE_READ_ONLY,
        "Read access to the assigned sources, their settings, destinations and debugger.",
    ),
    (
        "Workspace Billing Admin",
        "Manage the workspace plan, payment details and invoices.",
    ),
    (
        "Tracking Plan Admin",
        "Create, edit and connect tracking plans and Protocols transformations.",
    ),
    (
        "Tracking Plan Read-only",
        "Read access to tracking plans and their violations.",
    ),
    (
        "Warehouse Destination Admin",
        "Edit access to warehouses, their settings and sync schedules.",
    ),
    (
        "Warehouse Destination Read-only",
        "Read access to warehouses and their sync history.",
    ),
    (
        "Engage User",
        "Create and edit audiences, computed traits and journeys in Engage spaces.",
    ),
    (
        "Engage Read-only",
        "Read access to Engage spaces, audiences and profiles.",
    ),
    (
        "Identity Admin",
        "Edit identity resolution settings and profile data in Engage spaces.",
    ),
];

/// Roles handed out on the workspace besides owner and minimal access.
pub(crate) const EXTRA_WORKSPACE_ROLES: &[&str] = &[
    SOURCE_READ_ONLY,
    "Workspace Billing Admin",
    "Tracking Plan Admin",
    "Tracking Plan Read-only",
    "Warehouse Destination Admin",
    "Warehouse Destination Read-only",
    "Engage User",
    "Engage Read-only",
    "Identity Admin",
];

pub(crate) const ENVIRONMENTS: &[&str] = &["prod", "staging", "dev"];
pub(crate) const TEAMS: &[&str] = &["growth", "data-platform", "mobile", "marketing", "payments"];

pub(super) const FIRST_NAMES: &[&str] = &[
    "Alice",
    "Aaron",
    "Ana",
    "Beatriz",
    "Ben",
    "Bob",
    "Carol",
    "Chen",
    "Chloe",
    "Daniel",
    "David",
    "Diego",
    "Elena",
    "Emma",
    "Eva",
    "Farah",
    "Felix",
    "Finn",
    "Gabriel",
    "George",
    "Grace",
    "Hannah",
    "Hugo",
    "Ines",
    "Isabel",
    "Ivan",
    "Jamal",
    "Jonas",
    "Julia",
    "Kenji",
    "Kira",
    "Laura",
    "Leila",
    "Liam",
    "Marco",
    "Mateo",
    "Maya",
    "Nina",
    "Noah",
    "Nora",
    "Olivia",
    "Omar",
    "Oscar",
    "Pablo",
    "Paula",
    "Priya",
    "Quinn",
    "Rafael",
    "Rosa",
    "Samir",
    "Sofia",
    "Tara",
    "Tom",
    "Uma",
    "Umar",
    "Valentina",
    "Victor",
    "Wei",
    "William",
    "Xavier",
    "Yara",
    "Yusuf",
    "Zara",
    "Zoe",
];

pub(super) const LAST_NAMES: &[&str] = &[
    "Adams", "Ali", "Andersen", "Baker", "Brown", "Byrne", "Campbell", "Carter", "Chen", "Clark",
    "Cohen", "Costa", "Davies", "Dubois", "Evans", "Fischer", "Garcia", "Green", "Haddad", "Hall",
    "Hill", "Hughes", "Jensen", "Johnson", "Jones", "Kelly", "Khan", "Kim", "King", "Kowalski",
    "Larsen", "Lee", "Levi", "Lewis", "Lopez", "Martin", "Mitchell", "Moreau", "Murphy", "Nelson",
    "Ng", "Nguyen", "Novak", "O'Brien", "Olsen", "Ortiz", "Parker", "Patel", "Perez", "Phillips",
    "Ramos", "Roberts", "Rossi", "Sato", "Schmidt", "Scott", "Silva", "Singh", "Smith", "Tanaka",
    "Taylor", "Turner", "Walker", "Walsh", "Wang", "Weber", "Williams", "Wilson", "Wright",
    "Young",
];

pub(crate) const COMPANY_DOMAIN: &str = "acme.io";
pub(crate) const EXTERNAL_DOMAINS: &[&str] = &["gmail.com", "contractor.dev", "partner-agency.com"];

pub(super) const GROUP_NAMES: &[&str] = &[
    "Data Engineering",
    "Marketing Analytics",
    "Growth",
    "Mobile Engineering",
    "Platform",
    "Security",
    "Customer Success",
    "Product Analytics",
    "Web Engineering",
    "Data Science",
    "Lifecycle Marketing",
    "Payments",
    "Finance",
    "Support",
    "Sales Operations",
    "QA",
    "Contractors",
    "Privacy & Compliance",
    "Infrastructure",
    "Partnerships",
    "Design",
    "Content",
    "Executives",
    "Workspace Admins",
];

/// Catalog entries: (catalog id, name, slug, description, category, cloud event source).
pub(super) const CATALOG: &[(&str, &str, &str, &str, &str, bool)] = &[
    (
        "IqDTy1TpoU",
        "Javascript",
        "javascript",
        "Analytics.js, the JavaScript library for tracking website visitors.",
        "Website",
        false,
    ),
    (
        "UBrsG9RVzw",
        "iOS",
        "ios",
        "The Analytics for iOS library for native Apple apps.",
        "Mobile",
        false,
    ),
    (
        "V6ynUvQgbc",
        "Android",
        "android",
        "The Analytics for Android library for native Android apps.",
        "Mobile",
        false,
    ),
    (
        "xqegKCQA0W",
        "HTTP API",
        "http-api",
        "Send data to Segment from any device or server over HTTP.",
        "Server",
        false,
    ),
    (
        "yMu7LWoGzj",
        "Node.js",
        "nodejs",
        "The Analytics for Node.js library for server-side tracking.",
        "Server",
        false,
    ),
    (
        "Fd4Ox9bZVg",
        "Python",
        "python",
        "The Analytics for Python library for server-side tracking.",
        "Server",
        false,
    ),
    (
        "9TYqEh3nMe",
        "React Native",
        "react-native",
        "The Analytics for React Native library for cross-platform apps.",
        "Mobile",
        false,
    ),
    (
        "WcLx8iF2pA",
        "Ruby",
        "ruby",
        "The Analytics for Ruby library for server-side tracking.",
        "Server",
        false,
    ),
    (
        "Kd2nS6uHtR",
        "Go",
        "go",
        "The Analytics for Go library for server-side tracking.",
        "Server",
        false,
    ),
    (
        "Ju3vB7qLxe",
        "Java",
        "java",
        "The Analytics for Java library for server-side tracking.",
        "Server",
        false,
    ),
    (
        "zPk4Ya8GmT",
        "Stripe",
        "stripe",
        "Import payments, subscriptions and customer objects from Stripe.",
        "Payments",
        true,
    ),
];

/// Source base names and the catalog entry (index into `CATALOG`) each is built from.
pub(super) const SOURCE_BASES: &[(&str, usize)] = &[
    ("Marketing Site", 0),
    ("Web App", 0),
    ("iOS App", 1),
    ("Android App", 2),
    ("Orders API", 3),
    ("Billing Service", 4),
    ("Data Pipeline", 5),
    ("Docs Site", 0),
    ("React Native App", 6),
    ("Partner Webhooks", 3),
    ("Checkout", 0),
    ("Backend Events", 4),
    ("ML Features", 5),
    ("Rails Monolith", 7),
    ("Search Service", 8),
    ("Payments Service", 9),
    ("Stripe Billing", 10),
    ("Support Portal", 0),
];
