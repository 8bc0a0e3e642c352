//! The table of given-name variants: nicknames, short forms and the same
//! name in other languages (Bill = William = Wilhelm).

use std::collections::HashMap;
use std::sync::LazyLock;

/// Groups of given names that can stand for each other, canonical name
/// first. Spellings are folded (lower case ASCII, accents stripped; German
/// umlauts are listed both as "jurgen" and "juergen"). A name may sit in
/// several groups ("chris" is short for Christopher, Christian and
/// Christine); two names are equivalent when they share a group, which keeps
/// Christopher and Christine apart.
#[rustfmt::skip]
const GROUPS: &[&[&str]] = &[
    // Men.
    &["william", "bill", "billy", "will", "willy", "willie", "liam", "wilhelm", "willi", "guillaume", "guillermo", "guglielmo"],
    &["robert", "bob", "bobby", "rob", "robbie", "robby", "bert", "roberto", "robin"],
    &["james", "jim", "jimmy", "jimmie", "jamie", "jaime", "jacques", "giacomo"],
    &["john", "johnny", "jonny", "jon", "jack", "johann", "johannes", "hans", "hannes", "jan", "jens", "juan", "giovanni", "ian", "sean", "ivan", "jean"],
    &["michael", "mike", "mikey", "mick", "mickey", "micky", "michel", "miguel", "michele", "mikhail", "misha", "mischa", "michi"],
    &["joseph", "joe", "joey", "jo", "jos", "josef", "sepp", "seppl", "jupp", "jose", "pepe", "giuseppe", "beppe"],
    &["friedrich", "fritz", "fred", "freddy", "freddie", "frederick", "frederic", "federico", "friedel", "fredi", "fiete"],
    &["alfred", "fred", "freddy", "freddie", "alf", "alfie", "al", "alfredo"],
    &["alexander", "alex", "alec", "alexandre", "alejandro", "alessandro", "aleksandr", "aleksander", "sascha", "sasha", "sandro", "sandy", "xander"],
    &["christopher", "chris", "kit", "topher", "christoph", "christophe", "christof", "kristof", "cristobal", "cristoforo"],
    &["christian", "chris", "christiaan", "cristian", "kristian", "christan"],
    &["richard", "dick", "rick", "ricky", "rich", "richie", "rico", "ricardo", "riccardo"],
    &["thomas", "tom", "tommy", "thom", "tomas", "tommaso", "tomasz"],
    &["anthony", "tony", "anton", "antonio", "antoine", "toni", "antonius", "ton"],
    &["nicholas", "nick", "nicky", "nico", "niko", "nicolas", "nikolaus", "niklas", "klaus", "claus", "nils", "nikolai", "nicolai", "niccolo"],
    &["edward", "ed", "eddie", "eddy", "ted", "teddy", "ned", "eduard", "eduardo", "edouard", "edoardo"],
    &["theodore", "theo", "ted", "teddy", "theodor", "teo"],
    &["henry", "harry", "hank", "hal", "heinrich", "heinz", "hein", "heiner", "henri", "enrique", "enrico", "hinrich"],
    &["charles", "charlie", "chuck", "chas", "charly", "karl", "carl", "carlos", "carlo"],
    &["george", "georg", "jorge", "giorgio", "georges", "jorg", "joerg", "jurgen", "juergen", "schorsch", "georgie"],
    &["peter", "pete", "pierre", "pedro", "pietro", "piet", "petrus", "pyotr"],
    &["paul", "pablo", "paolo", "paulo", "pavel"],
    &["stephen", "steve", "steven", "stevie", "stephan", "stefan", "steffen", "stephane", "esteban", "stefano", "etienne"],
    &["daniel", "dan", "danny", "dani", "daniele", "dany"],
    &["david", "dave", "davy", "davey", "davide"],
    &["samuel", "sam", "sammy", "samu"],
    &["benjamin", "ben", "benny", "benji", "benjy"],
    &["benedict", "benedikt", "ben", "bene", "benno", "benedetto", "benito"],
    &["matthew", "matt", "matty", "matthias", "mathias", "matthaus", "matthaeus", "mathieu", "matteo", "mateo", "matze"],
    &["andrew", "andy", "drew", "andreas", "andre", "andres", "andi", "anders"],
    &["patrick", "pat", "paddy", "patrice", "patricio"],
    &["francis", "frank", "frankie", "franz", "francesco", "francisco", "francois", "franco", "paco", "pancho", "franziskus"],
    &["gabriel", "gabe", "gabriele", "gabriello"],
    &["maximilian", "max", "maxi", "maximillian", "maximiliano", "maxl"],
    &["wolfgang", "wolf", "wolfi"],
    &["bernhard", "bernard", "bernd", "bernie", "berni", "bernardo", "benno"],
    &["albert", "al", "bert", "bertie", "albrecht", "alberto", "albi"],
    &["herbert", "herb", "herbie", "bert"],
    &["gerhard", "gerd", "gert", "gerard", "gerardo", "gerry"],
    &["dietrich", "dieter", "dirk", "derek", "thierry", "theoderich"],
    &["leonhard", "leonard", "leo", "lenny", "leonardo"],
    &["konrad", "conrad", "kurt", "konni"],
    &["ulrich", "ulli", "uli", "ulf"],
    &["rudolf", "rudi", "rudolph", "rolf", "rudy"],
    &["walter", "walt", "wally", "walther"],
    &["siegfried", "siggi", "sigi"],
    &["manfred", "manni", "fred"],
    &["jacob", "jake", "jakob", "jacques", "jacopo", "kuba"],
    &["zachary", "zach", "zack", "zak"],
    &["joshua", "josh"],
    &["timothy", "tim", "timmy", "timo", "timotheus"],
    &["gregory", "greg", "gregor", "gregorio", "gregoire"],
    &["raymond", "ray", "raimund", "raymund", "ramon"],
    &["ronald", "ron", "ronnie", "ronny"],
    &["donald", "don", "donnie"],
    &["kenneth", "ken", "kenny"],
    &["lawrence", "larry", "laurence", "lorenz", "lorenzo", "laurent", "lars"],
    &["gerald", "gerry", "jerry"],
    &["douglas", "doug"],
    &["philip", "phil", "pip", "philipp", "philippe", "felipe", "filippo"],
    &["harold", "harry", "hal"],
    &["arthur", "art", "artie", "arturo"],
    &["vincent", "vince", "vinny", "vincenzo", "vinzenz", "vicente"],
    &["eugene", "gene", "eugen", "eugenio"],
    &["emanuel", "manny", "manuel", "immanuel", "emmanuel", "manu", "manolo"],
    &["gustav", "gus", "gustaf", "gustavo", "gustave", "gustl"],
    &["august", "gus", "augustus", "augusto", "augustin", "gustl"],
    &["sebastian", "basti", "bastian", "seb", "sebastien", "sebastiano"],
    &["tobias", "tobi", "toby"],
    &["dominic", "dom", "dominik", "dominick", "domenico", "dominique"],
    &["jonathan", "jon", "jonny", "jonnie"],
    &["luke", "lucas", "lukas", "luca", "luc"],
    &["mark", "marc", "marcus", "markus", "marco", "marcos"],
    &["martin", "marty", "martino"],
    &["oliver", "ollie", "olly", "olivier"],
    &["raphael", "rafael", "raffaele", "rafa"],
    &["ralph", "ralf", "rafe"],
    &["stanley", "stan"],
    &["nathaniel", "nate", "nat", "nathan"],
    &["louis", "lou", "lewis", "ludwig", "luis", "luigi", "ludovic", "lutz"],
    &["ignatius", "ignacio", "nacho", "ignaz"],
    &["fernando", "nando", "ferdinand", "ferdl"],
    &["jesus", "chucho", "chuy"],
    &["reginald", "reg", "reggie"],
    // Women.
    &["elizabeth", "liz", "lizzie", "lizzy", "beth", "betty", "bette", "betsy", "eliza", "elisabeth", "elise", "elsa", "elsbeth", "ilse", "lisa", "liza", "lisbeth", "isabeau", "elisabetta", "lilli", "elspeth"],
    &["katherine", "kate", "katie", "katy", "kathy", "cathy", "catherine", "kathryn", "kathleen", "katharina", "katarina", "kathrin", "katrin", "kat", "kitty", "kathe", "kaethe", "catalina", "caterina", "catarina", "ekaterina", "katja", "katya"],
    &["margaret", "grete", "gretel", "greta", "margarete", "margarethe", "margit", "marga", "maggie", "meg", "peggy", "madge", "marge", "margie", "margot", "marguerite", "margherita", "margarita", "rita"],
    &["alexandra", "alex", "alexa", "sasha", "sascha", "sandra", "sandy", "alejandra", "alessandra", "lexi"],
    &["christine", "chris", "christina", "kristin", "kristina", "kristine", "christa", "tina", "chrissy", "chrissie", "kirsten", "kerstin", "cristina", "stine"],
    &["antonia", "toni", "tonia", "antonie", "antonietta"],
    &["patricia", "pat", "patty", "patsy", "trish", "tricia", "trisha", "patrizia"],
    &["frances", "fran", "frannie", "franziska", "francesca", "francisca", "francoise", "fanny"],
    &["gabriela", "gabi", "gaby", "gabriele", "gabrielle", "gabriella"],
    &["josephine", "jo", "josie", "josefine", "josefina", "pepita"],
    &["johanna", "jo", "joan", "joanna", "joanne", "juana", "giovanna", "hanne", "jeanne"],
    &["jennifer", "jen", "jenny", "jenni", "jenna"],
    &["susan", "sue", "susie", "suzy", "susanne", "susanna", "suzanne", "susana", "sanne"],
    &["deborah", "debbie", "deb", "debby", "debra"],
    &["rebecca", "becky", "becca", "rebekka"],
    &["barbara", "barb", "barbie", "babs", "barbel", "baerbel"],
    &["dorothy", "dot", "dottie", "dolly", "dorothea", "dora", "thea"],
    &["victoria", "vicky", "vicki", "tori", "viktoria"],
    &["virginia", "ginny"],
    &["jessica", "jess", "jessie", "jessi"],
    &["abigail", "abby", "abbie", "gail"],
    &["amanda", "mandy", "manda"],
    &["cynthia", "cindy"],
    &["eleanor", "ellie", "nell", "nellie", "nora", "leonore", "eleonore", "eleonora", "lore"],
    &["helen", "helena", "helene", "lena", "elena", "ellen"],
    &["magdalena", "lena", "leni", "magda", "madeleine", "madeline", "maddie", "magdalene"],
    &["mary", "maria", "marie", "mimi", "molly", "polly", "mae", "mia", "mitzi", "marija"],
    &["anne", "ann", "anna", "annie", "anja", "ana", "anita", "annette", "anke", "nancy", "nan"],
    &["louise", "lou", "lulu", "louisa", "luise", "luisa"],
    &["emily", "em", "emmy", "emilie", "emilia"],
    &["emma", "emmi", "emmy"],
    &["olivia", "liv", "livvy", "olive"],
    &["isabella", "bella", "izzy", "isabel", "isabelle", "isobel", "isa"],
    &["teresa", "terry", "tess", "tessa", "theresa", "therese", "resi", "tessie"],
    &["jacqueline", "jackie", "jacky", "jacqui"],
    &["sarah", "sara", "sally", "sadie"],
    &["hannah", "hanna", "hanne"],
    &["nicole", "nicki", "nikki", "nicola", "nicolette"],
    &["stephanie", "steffi", "stefanie", "stefania", "stephania", "fanny"],
    &["daniela", "dani", "danielle", "daniella"],
    &["michaela", "michi", "micaela", "ela"],
    &["brigitte", "gitte", "britta", "bridget", "biddy", "brigid", "birgit"],
    &["angela", "angie", "angelika", "angelica", "angelique"],
    &["ursula", "ursel", "uschi", "ulla"],
    &["gertrud", "trude", "trudi", "gerti", "gertrude", "gertie"],
    &["caroline", "carrie", "carol", "caro", "carolina", "karoline", "lina"],
    &["charlotte", "lotte", "lotti", "lottie", "carlota"],
    &["cecilia", "cissy", "cacilie", "caecilie", "cecile", "cecily"],
    &["cornelia", "conny", "nele"],
    &["ulrike", "ulli", "uli", "rike"],
    &["friederike", "rike", "frederike", "frieda", "frida", "frederica"],
    &["matilda", "tilda", "tilly", "mathilde", "mathilda", "tilde"],
    &["wilhelmina", "mina", "minna", "wilma", "helmi"],
    &["adelheid", "heidi", "adelaide"],
    &["regina", "gina"],
    &["veronika", "vroni", "veronica", "vero"],
    &["florence", "flo", "flossie"],
    &["anastasia", "stacy", "nastja", "nastya"],
    &["natalia", "natasha", "natascha", "natalie", "nathalie", "talia"],
    &["tatiana", "tanja", "tanya", "tatjana"],
    &["svetlana", "sveta"],
    &["dolores", "lola", "lolita"],
    &["concepcion", "concha", "conchita"],
    &["guadalupe", "lupe", "lupita"],
    &["rosario", "charo"],
    &["consuelo", "chelo"],
    &["hannelore", "hanne", "lore"],
];

/// For each name, the groups it belongs to, in ascending order.
static INDEX: LazyLock<HashMap<&'static str, Vec<u16>>> = LazyLock::new(|| {
    let mut index: HashMap<&'static str, Vec<u16>> = HashMap::new();
    for (group, names) in (0u16..).zip(GROUPS) {
        for &name in names.iter() {
            let groups = index.entry(name).or_default();
            if groups.last() != Some(&group) {
                groups.push(group);
            }
        }
    }
    index
});

/// Whether two folded given names are variants of one name (share a group).
pub(super) fn equivalent(a: &str, b: &str) -> bool {
    let (Some(ga), Some(gb)) = (INDEX.get(a), INDEX.get(b)) else {
        return false;
    };
    ga.iter().any(|g| gb.contains(g))
}

/// The canonical name of the first group a folded given name belongs to.
pub(super) fn canonical(name: &str) -> Option<&'static str> {
    let group = *INDEX.get(name)?.first()?;
    Some(GROUPS[usize::from(group)][0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_well_formed() {
        assert!(GROUPS.len() >= 80, "{} groups", GROUPS.len());
        for names in GROUPS {
            assert!(names.len() >= 2, "{names:?}");
            for name in names.iter() {
                assert!(
                    name.chars().all(|c| c.is_ascii_lowercase()),
                    "{name} is not folded"
                );
            }
            let mut sorted = names.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), names.len(), "duplicate in {names:?}");
        }
    }

    #[test]
    fn equivalence() {
        let same: &[(&str, &str)] = &[
            ("bill", "william"),
            ("bob", "robert"),
            ("hans", "johannes"),
            ("sepp", "josef"),
            ("klaus", "nicholas"),
            ("christopher", "chris"),
            ("chris", "christine"),
            ("fred", "friedrich"),
            ("fred", "alfred"),
        ];
        for &(a, b) in same {
            assert!(equivalent(a, b), "{a} ~ {b}");
            assert!(equivalent(b, a), "{b} ~ {a}");
        }
        let different: &[(&str, &str)] = &[
            ("christopher", "christine"),
            ("friedrich", "alfred"),
            ("william", "robert"),
            ("zzz", "zzz"),
        ];
        for &(a, b) in different {
            assert!(!equivalent(a, b), "{a} !~ {b}");
        }
    }

    #[test]
    fn canonical_names() {
        let cases: &[(&str, Option<&str>)] = &[
            ("bill", Some("william")),
            ("william", Some("william")),
            ("sepp", Some("joseph")),
            ("chris", Some("christopher")),
            ("christine", Some("christine")),
            ("zorro", None),
        ];
        for &(name, want) in cases {
            assert_eq!(canonical(name), want, "{name}");
        }
    }
}
