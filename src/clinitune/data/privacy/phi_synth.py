"""Synthetic clinical notes with planted identifiers: the training text of the PHI screen's learned model.

Each note is built from a genre's header, body and sign-off; every identifier it plants is recorded as a
character span with one of six labels (LABELS). Variety is the point: many genres and voices (terse,
dictated, letters, lower-case portal messages, ALL-CAPS registration blocks), names from many cultures in
every order and casing, every Safe Harbor kind in many formats, and hard negatives everywhere (drugs from
the drug-name package, eponyms, weekday schedules, scores, fractions that look like dates, ages under 90).

Needs the dev extra (Faker, for names from its many locales). The screen itself never imports this module:
only `make phi-model` (scripts/train_phi_model.py), the tests and bench/ do.

Longer than 400 lines because most of it is the generator's tables (names of many cultures, places, eponyms,
drugs, sentence frames per identifier kind, genres), one kind after another; the code is the last 200 lines.
"""

from __future__ import annotations

import random
import re
import string
import unicodedata
from dataclasses import dataclass

from faker import Faker

from ..records import icd10
from ..records import names as us_names
from . import phi_vocab

LABELS = ("NAME", "LOCATION", "DATE", "AGE", "ID", "CONTACT")

FAKER_LOCALES = (
    "en_US en_GB en_IE en_IN en_NG yo_NG tw_GH sw zu_ZA es_MX es_ES es_CO pt_BR pt_PT fr_FR de_DE nl_NL it_IT pl_PL "
    "cs_CZ sk_SK hu_HU ro_RO hr_HR sl_SI tr_TR id_ID fil_PH vi_VN sv_SE no_NO da_DK fi_FI et_EE lt_LT lv_LV ga_IE"
).split()
# Cultures whose Faker locales write in other scripts, romanized here.
FIRST_EXTRA = """Mohammed Fatima Ahmad Aisha Omar Layla Youssef Mariam Hamza Zainab Khalid Noor Tariq Huda Bilal Samira
Reza Shirin Dariush Parisa Mehdi Farideh Arash Niloufar Wei Mei Jian Xiaoming Li Na Hui Jun Yan Lan Haruto Yui Sota Hina
Kenji Yuki Aiko Takeshi Ji-woo Min-jun Seo-yeon Hyun Soo-ah Jae Eun-ji Dong-hyun Gurpreet Harjit Manpreet Simran Arjun
Priya Lakshmi Karthik Deepa Venkat Anjali Rohan Sanjay Meena Tenzin Pema Abebe Tigist Mekdes Dawit Selam Yohannes
Ayaan Hodan Abdirahman Faduma Chidi Ngozi Emeka Adaeze Oluwaseun Funmilayo Kwame Akosua Kofi Ama Thabo Nomvula Xiong
Pa Nhia Tou Mai Tui Sina Losa Malia Keoni Leilani Kai Nizhoni Ahiga Dyani Kele Chenoa Nikolai Svetlana Dmitri Olga
Anastasia Igor Yevgenia Bogdan Oksana Giorgos Eleni Dimitra Kostas Yaakov Miriam Shlomo Rivka Avi Tova Mendel Chaya
Ezinne Ifeoma Obinna Adwoa Yaw Nana Esi Siosaia Mele Viliami Ana Hine Rangi Aroha Tamati Ngaire Jean-Baptiste Wislande
Fabiola Jonas Marie-Claude Thi Lan Minh Anh Duc Linh Bao Ngoc Quang Hoa Rizwan Saima Imran Nadia Faisal Hina""".split()
LAST_EXTRA = """Al-Hassan Al-Farsi Haddad Khoury Nasser Mansour Saleh Abdullah Hosseini Rahimi Karimi Tehrani Moradi
Wang Li Zhang Liu Chen Yang Huang Zhao Wu Zhou Xu Sun Sato Suzuki Takahashi Tanaka Watanabe Ito Yamamoto Nakamura
Kobayashi Kim Lee Park Choi Jung Kang Cho Yoon Jang Lim Singh Kaur Gill Sandhu Dhillon Grewal Sidhu Subramanian Iyer
Krishnan Raghavan Venkataraman Natarajan Pillai Nair Menon Reddy Rao Patel Shah Desai Mehta Joshi Chatterjee Banerjee
Bekele Tesfaye Haile Girma Alemu Wolde Mohamed Farah Warsame Abdi Hassan Okafor Okonkwo Adeyemi Adebayo Eze Nwosu Mensah
Owusu Boateng Asante Nkosi Dlamini Mthembu Vang Xiong Yang Lor Thao Moua Faleolo Tuilagi Leota Fonoti Mahe Tupou Begay
Yazzie Tsosie Benally Nez Tso Etsitty Sixkiller Whitehorse Swimmer Ivanov Smirnova Petrov Kuznetsova Popov Sokolova
Volkov Papadopoulos Georgiou Nikolaidis Pappas Cohen Levi Friedman Goldberg Rosenbaum Katz Shapiro Horowitz
Jean-Baptiste
Pierre Louis Joseph Charles Baptiste Toussaint Nguyen Tran Le Pham Hoang Phan Vu Dang Bui Do Ho Ngo Duong Ly Kowalski
Nowak Wisniewski Wojcik O'Brien O'Sullivan McCarthy MacLeod Fitzgerald Nakashima Oyelaran Abiodun""".split()
# Names that are also ordinary words or places: the model must learn them from context, not from a list.
WORD_NAMES = """Hope Faith Grace Joy Rose Ivy Dawn Summer Sky Sunny Will Mark Bill Rusty Cliff Hunter Jordan Paris
Brooklyn Austin Carter Major Bishop Price Baker Banks Black Brown Green White Moody Love Strong Small Young Long King
Rich Wood Stone Hill Fox Bell Cook Miles Chase Gay Joyner Hale Noble Sterling Pearl Ruby Crystal Amber Autumn Holly
Daisy Iris Lily Violet Hazel Heather Olive Sage Bliss Patience Charity Destiny Precious Royal Prince Duke Earl Ray
Guy Dean Drew Grant Lance Rocky Buck Skip Forest River Storm Rain Hunter Page Winter Frost Snow Rivers Wells Street
Lane Booker Cannon Porter Archer Gardner Fisher Shepherd Mason Walker Tanner Parson Dove Swan Crane Finch Wolf
Lamb""".split()
PARTICLES = (
    "van",
    "van der",
    "van den",
    "de",
    "de la",
    "del",
    "da",
    "dos",
    "di",
    "von",
    "bin",
    "ibn",
    "al",
    "le",
    "ter",
)
TITLES = ("Dr.", "Dr", "Mr.", "Mrs.", "Ms.", "Miss", "Mx.", "Prof.", "Nurse", "Sr.", "Rev.")
KIN = """wife husband son daughter mother father mom dad sister brother partner fiance girlfriend boyfriend niece nephew
granddaughter grandson aunt uncle cousin neighbor friend caregiver roommate stepdaughter stepson sister-in-law
son-in-law daughter-in-law guardian""".split()
ROLES = ("RN", "MD", "DO", "NP", "PA-C", "LCSW", "PharmD", "RT", "LPN", "CNA", "MSW", "PT", "DPT")

CITIES = """Visalia Tulare Fresno Modesto Stockton Bakersfield Redding Eureka Chico Merced Hanford Lodi Turlock Salinas
Yakima Spokane Tacoma Olympia Bellingham Boise Nampa Pocatello Billings Missoula Bozeman Casper Cheyenne Laramie
Provo Ogden Flagstaff Yuma Tucson Mesa Tempe Chandler Gallup Farmington Roswell Amarillo Lubbock Abilene Odessa Midland
Waco Tyler Beaumont Laredo Brownsville McAllen Harlingen Edinburg Killeen Temple Denton Plano Frisco Norman Tulsa
Lawton Enid Wichita Topeka Salina Lincoln Kearney Omaha Ames Dubuque Davenport Waterloo Rochester Duluth Mankato
Eau Claire Oshkosh Appleton Kenosha Racine Peoria Decatur Joliet Rockford Champaign Evansville Muncie Kokomo Elkhart
Kalamazoo Saginaw Flint Lansing Toledo Akron Dayton Canton Youngstown Lorain Erie Scranton Allentown Altoona Johnstown
Reading Lancaster Harrisburg Wilkes-Barre Binghamton Utica Elmira Ithaca Schenectady Poughkeepsie Yonkers Paterson
Camden Trenton Newark Hoboken Bridgeport Waterbury Hartford Worcester Lowell Brockton Fall River Springfield Pittsfield
Burlington Rutland Bangor Lewiston Nashua Manchester Concord Dover Wilmington Annapolis Hagerstown Frederick Roanoke
Lynchburg Danville Norfolk Hampton Richmond Durham Greensboro Asheville Fayetteville Wilmington Florence Greenville
Spartanburg Macon Albany Valdosta Savannah Augusta Dothan Tuscaloosa Huntsville Gadsden Biloxi Hattiesburg Tupelo
Meridian Monroe Shreveport Lafayette Houma Texarkana Jonesboro Conway Joplin Springfield Sedalia Paducah Bowling Green
Owensboro Knoxville Chattanooga Murfreesboro Clarksville Johnson City Gainesville Ocala Pensacola Tallahassee Lakeland
Sarasota Naples Hialeah Kissimmee Sanford Daytona Beach Palm Bay Anchorage Fairbanks Juneau Hilo Kailua Honolulu
Wasilla Bethel Nome Kotzebue Barrow Window Rock Shiprock Tuba City Chinle Kayenta Pine Ridge Rapid City Sioux Falls
Aberdeen Bismarck Minot Fargo Grand Forks Williston Havre Glasgow Kalispell Pendleton Bend Medford Eugene Salem
Corvallis
Astoria Coos Bay Klamath Falls Elko Reno Carson City Ely Winnemucca Pahrump Hobbs Clovis Las Cruces Deming Silver City
Socorro Taos Espanola Alamosa Durango Pueblo Greeley Loveland Longmont Grand Junction Montrose Gunnison Lagos Ibadan
Accra Kumasi Nairobi Mombasa Addis Ababa Mogadishu Manila Cebu Davao Hanoi Da Nang Hue Guadalajara Monterrey Puebla
Oaxaca
Tijuana Mexicali Juarez Hermosillo Culiacan Karachi Lahore Dhaka Chennai Pune Ludhiana Amritsar Tehran Shiraz Isfahan
Beirut Amman Aleppo Homs Mosul Erbil Kabul Herat Lviv Odesa Kharkiv Gdansk Krakow Poznan Port-au-Prince Cap-Haitien
Jacmel Apia Nukualofa Suva Pago Pago Hagatna Saipan Guangzhou Chengdu Wuhan Busan Incheon Daegu Osaka Sapporo Fukuoka
Thessaloniki Patras Porto Braga Recife Fortaleza Salvador Belem Manaus Curitiba""".split("\n")
CITIES = [c for line in CITIES for c in re.split(r"\s(?=[A-Z][a-z-]+(?:\s|$))", line) if c]
# The split above breaks two-word places apart; these are kept whole.
CITIES += """Eau Claire|Fall River|Johnson City|Daytona Beach|Palm Bay|Window Rock|Tuba City|Pine Ridge|Rapid City
|Sioux Falls
|Grand Forks|Coos Bay|Klamath Falls|Carson City|Las Cruces|Silver City|Grand Junction|Addis Ababa|Da Nang|Pago Pago
|Cap-Haitien|Port-au-Prince|Bowling Green|Little Rock|Baton Rouge|Cedar Rapids|Kansas City|Salt Lake City|Santa Fe
|San Bernardino|El Paso|Corpus Christi|Fort Wayne|Ann Arbor|Green Bay|Sioux City|Council Bluffs|Cape Girardeau
|Hot Springs|Pine Bluff|Lake Charles|Myrtle Beach|Rocky Mount|Virginia Beach|Newport News|West Palm Beach|Port St. Lucie
|Coral Springs|Fort Myers|Panama City|Wisconsin Rapids|Stevens Point|Traverse City|Bay City|Battle Creek
|Marquette|Sault Ste. Marie|International Falls|Bemidji|Red Wing|Mankato|North Platte|Scottsbluff|Dodge City
|Garden City|Liberal|Ponca City|Muskogee|Tahlequah|Bartlesville|Stillwater|San Angelo|Del Rio|Eagle Pass|Big Spring
|Round Rock|Sugar Land|Pearland|League City|Brenham|Nacogdoches""".replace("\n", "").split("|")
COUNTIES = """Tulare Kern Merced Stanislaus Yolo Humboldt Shasta Butte Imperial Riverside Maricopa Pima Navajo Apache
Coconino
Yavapai Cochise Dona Ana McKinley San Juan Rio Arriba Bernalillo Harris Bexar Travis Hidalgo Cameron Webb Lubbock Potter
Cook DuPage Will Kane Lake McHenry Winnebago Sangamon Marion Allen Vanderburgh Cuyahoga Franklin Hamilton Summit Lucas
Wayne Oakland Macomb Genesee Kent Washtenaw Hennepin Ramsey Dakota Anoka Polk Linn Scott Johnson Douglas Sarpy Lancaster
Jefferson Fayette Davidson Shelby Knox Rutherford Fulton DeKalb Gwinnett Cobb Chatham Richmond Mecklenburg Wake Guilford
Buncombe Horry Berkeley Orange Duval Broward Alachua Escambia Leon Pinellas Hillsborough Mobile Baldwin Madison Hinds
Harrison Caddo Orleans Jefferson Davis Kings Queens Bronx Erie Monroe Onondaga Albany Suffolk Nassau Westchester Essex
Bergen Hudson Passaic Camden Mercer Middlesex Worcester Hampden Hartford Fairfield Providence Cumberland Penobscot
Chittenden Allegheny Luzerne Lackawanna Dauphin Berks Northampton Fairfax Loudoun Prince William Henrico Arlington
Baltimore Montgomery Prince George's Anne Arundel Kanawha Cabell Pulaski Benton Greene Boone Shawnee Sedgwick Tulsa
Oklahoma Cleveland Comanche Ada Canyon Bonneville Yellowstone Missoula Gallatin Cascade Laramie Natrona Pennington
Minnehaha Burleigh Cass Ward Multnomah Lane Deschutes Jackson Klamath Spokane Yakima Pierce Snohomish Whatcom Clark
Washoe Elko Nye Salt Lake Utah Weber Cache Denver El Paso Pueblo Mesa Larimer Weld Boulder Anchorage Fairbanks
Honolulu Hawaii Maui Kauai""".split()
COUNTY_WORDS = ("County", "County", "County", "Parish", "Borough")
TOWN_PREFIX = (
    "New North South East West Little Big Old Lake Fort Port Mount St. Glen Upper Lower Great Elk Bear".split()
)
TOWN_SUFFIX = (
    "Springs Falls Lake River City Heights Junction Creek Hollow Ridge Valley Beach Harbor Crossing Mills Grove Point "
    "Center Village Bluff Prairie Station Corner Flats Gap"
).split()
TOWN_ENDING = "ville ton town burg boro field ford wood dale port ham ley by stead more worth".split()
NEIGHBORHOODS = """Five Points|Little Saigon|Chinatown|Logan Square|Pilsen|Little Havana|Crown Heights|Flatbush
|East Harlem|Fruitvale|Boyle Heights|the Mission|Germantown|Southside|Overtown|the Ironbound|Old Town|Midtown|Eastside
|West End|Hyde Park|Dorchester|Mattapan|Roxbury|Jamaica Plain|Fells Point|Anacostia|Highland Park|Frogtown""".replace(
    "\n", ""
).split("|")
STREET_SUFFIXES = (
    "St Street Ave Avenue Rd Road Blvd Lane Ln Dr Drive Ct Court Way Pl Place Ter Terrace Pkwy Cir Circle Hwy Trail "
    "Loop Run Pike Row Path Crossing Ridge Hollow Bend Point"
).split()
STREET_WORDS = """Oak Maple Cedar Pine Elm Willow Birch Walnut Chestnut Hickory Magnolia Dogwood Sycamore Juniper Aspen
Main Church School Mill Park River Lake Spring Hill Valley Forest Meadow Prairie Ridge Sunset Mesa Canyon Bluff Harbor
Jefferson Lincoln Washington Franklin Madison Monroe Jackson Grant Kennedy Martin Luther King Cesar Chavez Pulaski
Kosciuszko Lafayette Bolivar Juarez Alvarado Kamehameha Kalakaua Tecumseh Sequoyah Cherokee Navajo Apache Mohawk
Shoshone Seminole Hiawatha Evergreen Bayview Ocean Coastal Lakeshore Cottonwood Mesquite Saguaro Yucca
Sagebrush""".split()
STATES = (
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK OR RI "
    "SC SD TN TX UT VT VA WA WV WI WY"
).split()
STATE_NAMES = """Alabama Alaska Arizona Arkansas California Colorado Connecticut Delaware Florida Georgia Hawaii Idaho
Illinois Indiana Iowa Kansas Kentucky Louisiana Maine Maryland Massachusetts Michigan Minnesota Mississippi Missouri
Montana Nebraska Nevada Ohio Oklahoma Oregon Pennsylvania Tennessee Texas Utah Vermont Virginia Washington Wisconsin
Wyoming""".split()
COUNTRIES = """Mexico Guatemala Honduras Haiti Nigeria Ghana Somalia Ethiopia Eritrea Kenya India Pakistan Bangladesh
Nepal Vietnam Laos Cambodia China Korea Japan Philippines Samoa Tonga Fiji Iran Iraq Syria Lebanon Jordan Yemen
Afghanistan Ukraine Poland Russia Greece Portugal Brazil Colombia Peru Venezuela Cuba Jamaica Canada Ireland""".split()
MONTHS = (
    "January February March April May June July August September October November December".split(),
    "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(),
)
ORDINALS = """first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth fourteenth
fifteenth sixteenth seventeenth eighteenth nineteenth twentieth twenty-first twenty-second twenty-third twenty-fourth
twenty-fifth twenty-sixth twenty-seventh twenty-eighth""".split()
NUMBER_WORDS = "ninety|ninety-one|ninety-two|ninety-three|ninety-four|ninety-five|ninety-six|ninety-seven|ninety-eight"
NUMBER_WORDS = NUMBER_WORDS.split("|") + ["ninety-nine", "one hundred", "one hundred and one", "one hundred and two"]
YOUNG_WORDS = "sixty-two|seventy-four|eighty-one|eighty-nine|fifty-five|forty-three|thirty|seventy".split("|")

EPONYMS = """Parkinson's disease|Alzheimer's dementia|Crohn's disease|Graves' disease|Hashimoto's thyroiditis
|Cushing's syndrome|Addison's disease|Barrett's esophagus|Hodgkin lymphoma|Bell's palsy|Guillain-Barre syndrome
|Raynaud's phenomenon|Sjogren's syndrome|Kawasaki disease|Meniere's disease|Tourette syndrome|Down syndrome
|Marfan syndrome|Wilson's disease|Paget's disease|Dupuytren's contracture|Osgood-Schlatter disease|Lyme disease
|Wernicke's encephalopathy|Korsakoff syndrome|Brugada pattern|Wolff-Parkinson-White|Cheyne-Stokes respirations
|Kussmaul breathing|Virchow's node|Murphy's sign|McBurney's point tenderness|Homans sign|Tinel's sign|Phalen's test
|Lachman test|Romberg sign|Babinski sign|Kernig sign|Brudzinski sign|Trendelenburg gait|Finkelstein test
|McMurray test|Spurling test|Glasgow Coma Scale|Wells score|Wells criteria|Apgar score|Gleason score|Breslow depth
|Bosniak classification|Ranson criteria|Child-Pugh class|Mallampati class|Epley maneuver|Heimlich maneuver
|Valsalva maneuver|Foley catheter|Swan-Ganz catheter|Whipple procedure|Nissen fundoplication|Roux-en-Y bypass
|Holter monitor|Doppler ultrasound|Kelly clamp|Allen test|Beck's triad|Cullen sign|Grey Turner sign|Levine sign
|Korotkoff sounds|Austin Flint murmur|Graham Steell murmur|Dressler syndrome|Hartmann procedure|Ludwig angina
|Charcot foot|Buerger disease|Still's disease|Reiter syndrome|Bowen disease|Kaposi sarcoma|Burkitt lymphoma
|Ewing sarcoma|Wilms tumor|Hirschsprung disease|Meckel diverticulum|Zenker diverticulum|Baker's cyst|Colles fracture
|Smith fracture|Jones fracture|Boxer's fracture|Monteggia fracture|Salter-Harris II fracture|Pott's disease
|Caroli disease|Gilbert syndrome|Tanner stage 3|Braden score|Morse fall scale|CURB-65|CHA2DS2-VASc|HAS-BLED
|NIH Stroke Scale|PHQ-9|GAD-7|MoCA|Mini-Cog|Karnofsky score|ECOG 1|BI-RADS 3|Lugano stage II|Bishop score
|Richmond Agitation-Sedation Scale|CIWA-Ar|Ottawa ankle rules|Canadian C-spine rule|PERC rule|HEART score
|Centor score""".replace("\n", "").split("|")
COMMON_DRUGS = """metoprolol lisinopril amlodipine atorvastatin rosuvastatin metformin insulin glargine empagliflozin
apixaban rivaroxaban warfarin heparin enoxaparin clopidogrel aspirin furosemide spironolactone hydrochlorothiazide
losartan carvedilol levothyroxine prednisone methylprednisolone dexamethasone albuterol tiotropium fluticasone
montelukast omeprazole pantoprazole famotidine ondansetron metoclopramide acetaminophen ibuprofen naproxen oxycodone
hydromorphone morphine tramadol gabapentin pregabalin duloxetine sertraline escitalopram fluoxetine bupropion
trazodone quetiapine olanzapine risperidone aripiprazole lithium lamotrigine levetiracetam valproate phenytoin
lorazepam clonazepam alprazolam zolpidem melatonin donepezil memantine tamsulosin finasteride oxybutynin ceftriaxone
cefazolin vancomycin piperacillin azithromycin doxycycline amoxicillin ciprofloxacin levofloxacin nitrofurantoin
metronidazole fluconazole acyclovir valacyclovir oseltamivir methotrexate hydroxychloroquine adalimumab infliximab
allopurinol colchicine semaglutide liraglutide dulaglutide sitagliptin glipizide pioglitazone digoxin amiodarone
diltiazem verapamil hydralazine isosorbide nitroglycerin labetalol nifedipine potassium chloride magnesium oxide
ferrous sulfate folic acid cyanocobalamin vitamin D thiamine""".split()
BRANDS = """Eliquis Xarelto Lasix Keppra Coumadin Lipitor Crestor Synthroid Zoloft Lexapro Prozac Wellbutrin Seroquel
Abilify Zyprexa Depakote Lamictal Neurontin Lyrica Cymbalta Ambien Xanax Ativan Klonopin Norco Percocet Dilaudid
Tylenol Advil Motrin Aleve Prilosec Protonix Pepcid Zofran Reglan Ozempic Wegovy Mounjaro Jardiance Farxiga Januvia
Trulicity Victoza Lantus Humalog Novolog Tresiba Levemir Glucophage Plavix Brilinta Entresto Toprol Lopressor Norvasc
Cozy Flomax Proscar Ditropan Aricept Namenda Humira Remicade Enbrel Stelara Dupixent Otezla Zyrtec Claritin Allegra
Flonase Singulair Spiriva Symbicort Advair Breo Trelegy Ventolin ProAir Augmentin Keflex Cipro Levaquin Bactrim Macrobid
Flagyl Diflucan Valtrex Tamiflu Paxlovid Narcan Suboxone Vivitrol Chantix Nicorette Shingrix Prevnar Pneumovax Gardasil
Comirnaty Spikevax Arexvy Abrysvo Boostrix Adacel Fluzone Flublok""".split()
VACCINES = (
    "Tdap|MMR|PPSV23|PCV20|Shingrix|Prevnar 20|the flu shot|the COVID booster|Hep B series|HPV #2|RSV vaccine".split(
        "|"
    )
)
DEPARTMENTS = """Surgical Oncology|General Practice|Psychiatry|Internal Medicine|Family Medicine|Emergency Medicine
|Cardiothoracic Surgery|Physical Medicine and Rehabilitation|Infectious Disease|Palliative Care|Wound Care
|Case Management|Interventional Radiology|Labor and Delivery|Behavioral Health|Neurology|Nephrology|Hematology/Oncology
|Vascular Lab|Pulmonary Function Lab|Sleep Medicine|Occupational Therapy|Speech Language Pathology|Social Work
|Chaplaincy|Brief Op Note|Hospital Course|Review of Systems|Physical Exam|Assessment and Plan|Discharge Instructions
|Chief Complaint|History of Present Illness|Past Medical History|Family History|Social History|Medications
|Allergies|Imaging|Impression|Findings|Technique|Comparison|Clinical Indication|Procedure Note|Follow Up""".replace(
    "\n", ""
).split("|")
SCORE_NOUNS = "score index grade classification criteria scale stage staging rule nomogram model".split()
SIGNS = "sign test maneuver reflex phenomenon syndrome disease node triad".split()
FREQUENCIES = "daily|BID|TID|QID|q6h|q8h|q12h|qHS|PRN|weekly|every other day|twice a week|nightly|with meals".split("|")


@dataclass
class Note:
    text: str
    spans: list[tuple[int, int, str]]  # (start, end, label), non-overlapping, sorted
    genre: str


class Builder:
    """Appends text piece by piece, recording the spans of identifier pieces."""

    def __init__(self):
        self.parts: list[str] = []
        self.spans: list[tuple[int, int, str]] = []
        self.n = 0

    def add(self, text: str, label: str | None = None) -> Builder:
        if label and text:
            self.spans.append((self.n, self.n + len(text), label))
        self.parts.append(text)
        self.n += len(text)
        return self

    def note(self, genre: str) -> Note:
        return Note("".join(self.parts), self.spans, genre)


def ascii_name(s: str) -> str:
    return unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()


class Gen:
    """All value generators share one seeded random source, so a seed fixes the corpus."""

    def __init__(self, seed: int):
        self.r = random.Random(seed)
        Faker.seed(seed)
        self.fakers = [Faker(loc) for loc in FAKER_LOCALES]
        self.drugs = sorted(w for w in phi_vocab.drug_words() if len(w) <= 14)
        self.prose = Faker("en_US")
        self.prose.seed_instance(seed)
        self.icd = sorted({icd10.description(c) for c in icd10.all_codes() if icd10.is_leaf(c)})

    # ---------------------------------------------------------------- names
    def first(self) -> str:
        r = self.r
        p = r.random()
        if p < 0.12:
            return r.choice(WORD_NAMES)
        if p < 0.35:
            return r.choice(FIRST_EXTRA)
        if p < 0.45:
            return r.choice(us_names.FEMALE_FIRST + us_names.MALE_FIRST)
        return ascii_name(r.choice(self.fakers).first_name()) or "Ana"

    def last(self) -> str:
        r = self.r
        p = r.random()
        if p < 0.1:
            return r.choice(WORD_NAMES)
        if p < 0.35:
            return r.choice(LAST_EXTRA)
        if p < 0.45:
            return r.choice(us_names.LAST)
        name = ascii_name(r.choice(self.fakers).last_name()) or "Lee"
        if r.random() < 0.06:
            name = f"{name}-{self.last_plain()}"
        if r.random() < 0.05:
            name = f"{r.choice(PARTICLES)} {name}"
        return name

    def last_plain(self) -> str:
        return ascii_name(self.r.choice(self.fakers).last_name()).split()[0] or "Diaz"

    def full(self) -> str:
        """A full name in one of many orders and shapes (no title)."""
        r = self.r
        f, la = self.first(), self.last()
        mi = r.choice(string.ascii_uppercase)
        return r.choice(
            [
                f"{f} {la}",
                f"{f} {la}",
                f"{f} {la}",
                f"{f} {mi}. {la}",
                f"{f} {mi} {la}",
                f"{f[0]}. {la}",
                f"{f[0]}. {mi}. {la}",
                f"{f} {self.first()} {la}",
                f"{f} {la}-{self.last_plain()}",
                f"{f} {la} {r.choice(['Jr', 'Jr.', 'Sr.', 'II', 'III'])}",
                f'{f} "{self.first()}" {la}',
                f"{f} '{self.first()}' {la}",
                f"{la}",
                f"{f}",
            ]
        )

    def last_first(self) -> str:
        r = self.r
        f, la = self.first(), self.last()
        mi = r.choice(string.ascii_uppercase)
        return r.choice(
            [
                f"{la}, {f}",
                f"{la}, {f} {mi}.",
                f"{la}, {f} {mi}",
                f"{la.upper()}, {f.upper()}",
                f"{la.upper()}, {f}",
                f"{la.upper()}, {f} {self.first()}",
                f"{la.upper()}, {f} {mi}.",
                f"{la}, {f} {self.first()}",
            ]
        )

    # ---------------------------------------------------------------- places
    def city(self) -> str:
        r = self.r
        p = r.random()
        if p < 0.1:
            return ascii_name(r.choice(self.fakers[:1]).city())
        if p < 0.45:
            return self.town()
        return r.choice(CITIES)

    def town(self) -> str:
        """A small place built the way American and British places are named: no list holds them all."""
        r = self.r
        root = r.choice([r.choice(STREET_WORDS), self.last_plain(), r.choice(COUNTIES), r.choice(WORD_NAMES)])
        return r.choice(
            [
                f"{r.choice(TOWN_PREFIX)} {root}",
                f"{root} {r.choice(TOWN_SUFFIX)}",
                f"{root}{r.choice(TOWN_ENDING)}",
                f"{r.choice(TOWN_PREFIX)} {root}{r.choice(TOWN_ENDING)}",
                f"{root} {r.choice(TOWN_SUFFIX)} {r.choice(['West', 'East', 'North', 'South'])}",
                f"{root}-on-{r.choice(STREET_WORDS)}",
                f"{root}-in-{r.choice(['Hand', 'Vale', 'Marsh', 'Field'])}",
            ]
        )

    def postcode(self) -> str:
        """Postal codes of other countries: UK, Canada, Ireland, India."""
        r, L, d = self.r, self.letters, self.digits
        return r.choice(
            [
                f"{L(r.choice([1, 2]))}{d(r.choice([1, 2]))} {d(1)}{L(2)}",
                f"{L(1)}{d(1)}{L(1)} {d(1)}{L(1)}{d(1)}",
                f"{L(1)}{d(2)} {L(1)}{d(1)}{L(1)}{d(1)}",
                f"{d(3)} {d(3)}",
            ]
        )

    def county(self) -> str:
        return f"{self.r.choice(COUNTIES)} {self.r.choice(COUNTY_WORDS)}"

    def zip(self) -> str:
        z = f"{self.r.randint(1, 99950):05d}"
        return z + (f"-{self.r.randint(0, 9999):04d}" if self.r.random() < 0.2 else "")

    def street(self) -> str:
        r = self.r
        num = str(r.choice([r.randint(1, 99), r.randint(100, 9999), r.randint(10000, 99999)]))
        words = " ".join(r.choice(STREET_WORDS) for _ in range(r.choice([1, 1, 1, 2])))
        if r.random() < 0.2:
            words = self.last()
        direction = r.choice(["", "", "", "N ", "S ", "E. ", "West ", "NW "])
        s = f"{num} {direction}{words} {r.choice(STREET_SUFFIXES)}"
        if r.random() < 0.25:
            s += r.choice([", Apt ", " Apt. ", " #", ", Unit ", ", Suite ", " Lot "]) + str(r.randint(1, 450))
        if r.random() < 0.08:
            s = f"PO Box {r.randint(10, 99999)}"
        if r.random() < 0.05:
            s = f"{r.choice(['Rural Route', 'RR', 'HC'])} {r.randint(1, 9)} Box {r.randint(1, 999)}"
        return s

    # ---------------------------------------------------------------- dates and ages
    def date(self) -> str:
        r = self.r
        y, m, d = r.randint(1925, 2026), r.randint(1, 12), r.randint(1, 28)
        mon, mo = MONTHS[0][m - 1], MONTHS[1][m - 1]
        sfx = {1: "st", 2: "nd", 3: "rd", 21: "st", 22: "nd", 23: "rd"}.get(d, "th")
        forms = [
            f"{m}/{d}/{y}",
            f"{m:02d}/{d:02d}/{y}",
            f"{m}/{d}/{y % 100:02d}",
            f"{d:02d}/{m:02d}/{y}",
            f"{d}/{m}/{y}",
            f"{y}-{m:02d}-{d:02d}",
            f"{y}/{m:02d}/{d:02d}",
            f"{m:02d}-{d:02d}-{y}",
            f"{d:02d}.{m:02d}.{y}",
            f"{d:02d}{mo.upper()}{y}",
            f"{d}-{mo}-{y}",
            f"{d}-{mo}-{y % 100:02d}",
            f"{mon} {d}, {y}",
            f"{mo} {d}, {y}",
            f"{mo}. {d}, {y}",
            f"{mon} {d}{sfx}, {y}",
            f"{d} {mon} {y}",
            f"{d}{sfx} {mo} {y}",
            f"{mon} {d}",
            f"{mo} {d}",
            f"{mon} {d}{sfx}",
            f"{mon} {y}",
            f"{mo} {y}",
            f"{mo}-{y % 100:02d}",
            f"{m}/{d}",
            f"{m:02d}/{y}",
            f"the {ORDINALS[d - 1]} of {mon}",
            f"{mon} {ORDINALS[d - 1]}",
            f"the {d}{sfx} of {mon}",
            f"the {d}{sfx}",
            f"{y}{m:02d}{d:02d}",
            f"{m}/{d}/{y} {r.randint(0, 23):02d}:{r.randint(0, 59):02d}",
            f"{y}-{m:02d}-{d:02d}T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}",
        ]
        return r.choice(forms)

    def age90(self) -> str:
        r = self.r
        a = r.randint(90, 106)
        w = r.choice(NUMBER_WORDS)
        return r.choice(
            [
                f"{a}-year-old",
                f"{a} year old",
                f"{a}-yr-old",
                f"{a} y.o.",
                f"{a} yo",
                f"{a}yo",
                f"{a} y/o",
                f"{a}F",
                f"{a}M",
                f"{a} years old",
                f"{w}-year-old",
                f"{w} years old",
                f"aged {a}",
            ]
        )

    # ---------------------------------------------------------------- numbers that identify
    def digits(self, n: int) -> str:
        return "".join(self.r.choice(string.digits) for _ in range(n))

    def letters(self, n: int) -> str:
        return "".join(self.r.choice(string.ascii_uppercase) for _ in range(n))

    def code(self) -> str:
        """An identifier of arbitrary shape."""
        r = self.r
        shapes = [
            lambda: self.digits(r.randint(4, 12)),
            lambda: self.letters(r.randint(1, 3)) + self.digits(r.randint(5, 10)),
            lambda: self.letters(r.randint(2, 4)) + "-" + self.digits(r.randint(4, 8)),
            lambda: self.digits(3) + "-" + self.digits(r.randint(3, 6)) + "-" + self.letters(1),
            lambda: self.letters(3) + "-" + str(r.randint(2015, 2026)) + "-" + self.digits(r.randint(4, 7)),
            lambda: self.letters(1) + self.digits(2) + "-" + self.digits(5),
            lambda: self.digits(4) + self.letters(2) + self.digits(4),
            lambda: self.letters(1) + self.digits(8),
            lambda: "".join(r.choice(string.ascii_uppercase + string.digits) for _ in range(r.randint(6, 14))),
        ]
        return r.choice(shapes)()

    def phone(self) -> str:
        r = self.r
        a, b, c = r.randint(201, 989), r.randint(200, 999), self.digits(4)
        return r.choice(
            [
                f"({a}) {b}-{c}",
                f"{a}-{b}-{c}",
                f"{a}.{b}.{c}",
                f"{a} {b} {c}",
                f"+1 {a} {b} {c}",
                f"1-{a}-{b}-{c}",
                f"{a}{b}{c}",
                f"{b}-{c}",
                f"({a}){b}-{c}",
                f"{a}-{b}-{c} ext. {r.randint(10, 9999)}",
                f"+44 20 {self.digits(4)} {self.digits(4)}",
                f"+234 {self.digits(3)} {self.digits(3)} {self.digits(4)}",
                f"+52 {self.digits(2)} {self.digits(4)} {self.digits(4)}",
                f"+63 {self.digits(3)} {self.digits(3)} {self.digits(4)}",
            ]
        )

    def email(self, name: str | None = None) -> str:
        r = self.r
        base = re.sub(r"[^a-z]", "", (name or self.first() + self.last()).lower())[:14] or "pt"
        sep = r.choice(["", ".", "_"])
        user = r.choice(
            [base, base + str(r.randint(1, 99)), base[:1] + sep + base[1:], f"{base}{sep}{r.randint(60, 2005)}"]
        )
        dom = r.choice(["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "aol.com", "comcast.net"])
        return f"{user}@{dom}"

    def url(self) -> str:
        r = self.r
        handle = re.sub(r"[^a-z0-9]", "", (self.first() + self.last()).lower())
        return r.choice(
            [
                f"https://www.facebook.com/{handle}",
                f"www.instagram.com/{handle}{r.randint(1, 99)}",
                f"https://gofundme.com/f/help-{handle}",
                f"http://{handle}.blogspot.com",
                f"https://www.linkedin.com/in/{handle}",
                f"https://portal.{handle[:6]}health.org/patient/{self.digits(7)}",
                f"https://tiktok.com/@{handle}",
            ]
        )

    def ip(self) -> str:
        r = self.r
        if r.random() < 0.15:
            return ":".join(f"{r.randint(0, 65535):x}" for _ in range(8))
        return ".".join(str(r.randint(1, 254)) for _ in range(4))

    # ---------------------------------------------------------------- hard negatives
    def drug(self) -> str:
        r = self.r
        p = r.random()
        if p < 0.35:
            return r.choice(COMMON_DRUGS)
        if p < 0.65:
            return r.choice(BRANDS)
        d = r.choice(self.drugs)
        return d.capitalize() if r.random() < 0.5 else d

    def dose(self) -> str:
        r = self.r
        return r.choice(
            [
                f"{r.choice([2.5, 5, 10, 12.5, 20, 25, 40, 50, 81, 100, 250, 500, 1000])} mg {r.choice(FREQUENCIES)}",
                f"{r.randint(1, 40)} units {r.choice(['qHS', 'with meals', 'daily', 'BID'])}",
                f"{r.choice([0.5, 1, 2])} tab {r.choice(FREQUENCIES)}",
                f"{r.choice(['1/2', '1', '2'])} tablet(s) by mouth {r.choice(FREQUENCIES)}",
            ]
        )

    def weekdays(self) -> str:
        r = self.r
        days = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
        a, b = r.sample(days, 2)
        return r.choice(
            [
                f"on {a}s and {b}s",
                f"every {a}",
                f"{a[:3]}/{b[:3]}/{r.choice(days)[:3]}",
                f"on {a}",
                "M/W/F",
                "Tue/Thu/Sat",
                f"every other {a}",
                f"{a}s",
                f"{a.lower()}s and {b.lower()}s",
            ]
        )

    def numbers(self) -> str:
        """Measurements that look like dates or ids and are neither."""
        r = self.r
        return r.choice(
            [
                f"BP {r.randint(88, 190)}/{r.randint(50, 110)}",
                f"HR {r.randint(48, 130)}",
                f"SpO2 {r.randint(86, 100)}%",
                f"T {r.randint(360, 395) / 10}",
                f"RR {r.randint(12, 30)}",
                f"{r.randint(3, 5)}/5 strength",
                f"pain {r.randint(0, 10)}/10",
                f"20/{r.choice([20, 25, 30, 40, 60, 200])} vision",
                f"GCS {r.randint(3, 15)}",
                f"{r.choice(['1/2', '3/4', '2/3', '1/4'])} of the dose",
                f"a {r.randint(1, 4)}/6 systolic murmur",
                f"INR {r.randint(9, 40) / 10}",
                f"A1c {r.randint(52, 130) / 10}%",
                f"EF {r.randint(15, 70)}%",
                f"Cr {r.randint(5, 60) / 10}",
                f"K {r.randint(28, 62) / 10}",
                f"Hgb {r.randint(60, 170) / 10}",
                f"WBC {r.randint(20, 250) / 10}",
                f"{r.randint(1, 9)}.{r.randint(0, 9)} x {r.randint(1, 9)}.{r.randint(0, 9)} cm",
                f"{r.randint(1, 12)} weeks",
                f"{r.randint(2, 30)} pack-years",
                f"{r.choice(['C5-C6', 'L4-L5', 'T12', 'S1'])}",
                f"glucose {r.randint(60, 400)}",
                f"{r.randint(1, 3)}+ pitting edema",
                f"{r.randint(100, 2000)} mL",
                f"weight {r.randint(45, 140)} kg",
            ]
        )

    def icd_phrase(self) -> str:
        d = self.r.choice(self.icd)
        d = re.sub(r",? (?:initial|subsequent) encounter.*$|, unspecified.*$", "", d)
        return d if self.r.random() < 0.5 else d.lower()

    def title_phrase(self) -> str:
        """Headers, departments and eponymous scores in Title Case: capitalized words that are no one's name."""
        r = self.r
        p = r.random()
        if p < 0.3:
            return r.choice(DEPARTMENTS)
        if p < 0.6:
            return " ".join(w.capitalize() if len(w) > 3 else w for w in self.icd_phrase().lower().split()[:5])
        a, b = self.last_plain(), self.last_plain()
        return r.choice(
            [f"{a}-{b} {r.choice(SCORE_NOUNS)}", f"{a} {r.choice(SCORE_NOUNS)}", f"{a}'s {r.choice(SIGNS)}"]
        )

    def sentence(self) -> str:
        """Ordinary English prose (Faker's word list), so that a common word is never learned as a name."""
        return self.prose.sentence(nb_words=self.r.randint(5, 16))

    def med_line(self) -> str:
        r = self.r
        drug = self.drug()
        unit = r.choice(["mg", "mcg", "units", "mL/hr", "mcg/kg/min", "g", "mEq", "L", "mg/kg"])
        amount = r.choice([str(r.randint(1, 1000)), f"{r.randint(0, 20)}.{r.randint(0, 99)}", "0.04", "0.5"])
        return r.choice(
            [
                f"{drug} {amount} {unit} {r.choice(FREQUENCIES)}",
                f"{drug} {amount}",
                f"on {drug} {amount} {unit}",
                f"{drug} gtt at {amount} {unit}",
                f"{r.choice(['HFNC', 'NC', 'BiPAP', 'NRB'])} {r.randint(1, 60)} L",
                f"{r.choice(['TSH', 'Na', 'K', 'Cl', 'BUN', 'Cr', 'Mg', 'Phos', 'lactate', 'troponin', 'BNP'])} "
                f"{r.randint(0, 200)}.{r.randint(0, 9)}",
                f"{r.choice(['q15', 'q1h', 'q2h', 'q4h'])} checks",
                f"{r.choice(['Braden', 'Morse', 'RASS', 'CAM-ICU', 'CIWA', 'COWS'])} {r.randint(-3, 23)}",
                f"{r.choice(['NSR', 'sinus tach', 'afib', 'SB'])} {r.randint(4, 16) * 10}s",
                f"G{r.randint(1, 6)}P{r.randint(0, 5)}{r.randint(0, 9)}{r.randint(0, 9)}{r.randint(0, 5)}",
                f"{r.randint(20, 41)}w{r.randint(0, 6)}d",
                f"FHR {r.randint(100, 170)}",
                f"{r.randint(1900, 2300):04d}-{r.randint(600, 800):04d} shift",
            ]
        )

    def young_age(self) -> str:
        r = self.r
        a = r.randint(1, 89)
        return r.choice([f"{a}-year-old", f"{a} y.o.", f"{a}yo", f"{a}F", f"{a}M", f"{r.choice(YOUNG_WORDS)}-year-old"])


# ---------------------------------------------------------------------------------------------- templates
# {SLOT}s: upper-case slots plant an identifier (labelled), lower-case slots are hard negatives (not labelled).
PHI_SLOTS = {
    "NAME": "NAME",
    "FIRST": "NAME",
    "LAST": "NAME",
    "LASTFIRST": "NAME",
    "NAME2": "NAME",
    "CITY": "LOCATION",
    "COUNTY": "LOCATION",
    "ZIP": "LOCATION",
    "POSTCODE": "LOCATION",
    "TOWN": "LOCATION",
    "STREET": "LOCATION",
    "NEIGH": "LOCATION",
    "DATE": "DATE",
    "AGE90": "AGE",
    "AGENUM": "AGE",
    "w90": "AGE",
    "PHONE": "CONTACT",
    "EMAIL": "CONTACT",
    "URL": "CONTACT",
    "IP": "CONTACT",
    "ID": "ID",
    "SSN": "ID",
}
NAME_SENTENCES = """{NAME} is a {age} with {epo} who presents with worsening dyspnea.
Patient {NAME} was seen today for follow-up of {epo}.
{title} {LAST} tolerated the procedure well.
Discussed the plan with his {kin} {FIRST}, who agrees.
Spoke with the patient's {kin}, {NAME}, by phone.
Her {kin} {NAME} is the health care proxy.
{FIRST} reports she has been taking {drug} {dose} as prescribed.
Pt states that {FIRST} (her {kin}) helps with meds.
Seen with {title} {LAST} from cardiology; recommendations appreciated.
Case discussed with {title} {NAME}, attending.
Per {title} {LAST}, continue {drug} and recheck labs.
Referred by {title} {NAME} for evaluation of {epo}.
Dear {title} {LAST},
Thank you for referring {NAME} to our clinic.
I saw your patient, {title} {LAST}, in consultation today.
Consent obtained from {NAME} ({kin}).
Emergency contact: {NAME} ({kin})
{FIRST} prefers to be called "{FIRST}".
The patient, who goes by "{FIRST}", was pleasant and cooperative.
Accompanied by her {kin} {FIRST} and {kin} {NAME2}.
{NAME} arrived by EMS from home.
Mr. {LAST} denies chest pain, fever or chills.
Mrs. {LAST} asked about {drug} side effects.
{title} {LAST} was notified of the critical value at {time}.
Results called to {NAME}, {role}, and read back.
Handoff given to {NAME}, {role}.
Note reviewed with {FIRST} {LAST}, {role}.
Social work ({NAME}, {role}) met with the family.
{FIRST}'s {kin} says she has been more confused since starting {drug}.
Lives with her {kin} {FIRST} who works nights.
Family at bedside including {kin} {NAME} and granddaughter {FIRST}.
{LASTFIRST} is a {age} here for annual exam.
Called {FIRST} back; no answer, left message.
{title} {NAME} will see the patient in clinic next week.
Discussed goals of care with {NAME}, who is her daughter and POA.
Pt's friend {FIRST} drove him to the appointment.
Interpreter {NAME} (Vietnamese) used for the visit.
Chaplain {FIRST} visited with the family.
{NAME} declined the {vax} today.
We will follow up with {NAME} in 6 weeks.
Mother, {NAME}, reports the child had a fever overnight.
Patient is known to {title} {LAST} in nephrology.
Care coordinated with {NAME} at the home health agency.
Message from {FIRST}: she ran out of {drug}.
{FIRST} and her {kin} {FIRST} were given discharge instructions.
History obtained from the patient and his {kin} {NAME}.
its {first} again, my {kin} {first} says hi.
this is {first} {last}, calling about my mom.
my {kin} {first} will pick me up.
Patient: {LASTFIRST}
PATIENT: {LASTFIRST}
Pt: {LASTFIRST}, {AGE90}, seen on rounds.
{NAME}, {AGE90}, is resting comfortably.
Resident {title} {NAME}, {AGE90}, ate 50% of breakfast.
{FIRST} ({kin}) and {FIRST} ({kin}) visited today.
Ordering provider: {NAME}, {role}
Attending: {title} {NAME}
Reading radiologist: {NAME}, MD
Interpreted by {NAME}, MD.
Collected by {FIRST} {LAST}, phlebotomy.
{FIRST} {LAST} ({kin}) signed the consent.
Tech: Thanks {FIRST}, I'll check the logs.
Nurse: Hi {FIRST}, how is the pain today?
{first}: my chest hurts a little
Agent: Thank you, {title} {LAST}.
{FIRST} called back about the {drug}.
Spoke with {LAST} at the pharmacy.
{FIRST} says the {icd} is better.
spoke with {first} today, she is doing ok
{first} called, wants a refill of {drug}
Message left for {FIRST}.
Seen with {FIRST}, her {kin}.""".split("\n")
LOCATION_SENTENCES = """Lives at {STREET}, {CITY}, {state} {ZIP}.
Patient resides in {CITY} with her {kin}.
She moved from {CITY} to {CITY} last year.
Lives alone in a trailer outside {CITY}.
Resides in {COUNTY} near {CITY}.
Originally from {CITY}, {country}; came to the US in {year}.
Transferred from an outside hospital in {CITY}.
Home address: {STREET}
{CITY}, {state} {ZIP}
Works at a warehouse in {CITY}.
Drove in from {CITY} this morning, about 2 hours.
Lives in the {NEIGH} neighborhood with three roommates.
Recently traveled to {CITY} to visit family.
Mailing address is {STREET}, {CITY} {ZIP}.
Zip code {ZIP}.
Family farm in {COUNTY}, {statename}.
She grew up in {CITY} and still has family there.
Follows with a PCP in {CITY}.
Lives on {STREET} near the fire station.
Was living at a shelter on {STREET} until last month.
Return address: {STREET}, {CITY}, {state} {ZIP}
{STREET}, {TOWN}, {POSTCODE}
Address: {STREET}, {TOWN} {POSTCODE}, {country}
Lives on a farm outside {TOWN}.
Came in from {TOWN} by ambulance.
Hit by a car on the highway near {TOWN}.
{TOWN} fire department on scene.
She drives to dialysis in {TOWN} {weekdays}.
His sister in {TOWN} is coming to help.
Stays with family in {TOWN} during the week.
Winters in {CITY}, summers in {TOWN}.
Lives in {TOWN}, {state} with his wife.""".split("\n")
DATE_SENTENCES = """Admitted on {DATE} and discharged on {DATE}.
DOB: {DATE}
Date of birth {DATE}.
Seen in clinic on {DATE} for the same complaint.
Last colonoscopy {DATE}, normal.
CT of the chest on {DATE} showed a 6 mm nodule.
Surgery is scheduled for {DATE}.
Follow up on {DATE} at {time}.
Last seen {DATE}.
Symptoms began around {DATE}.
She fell at home on {DATE}.
Date of service: {DATE}
Echo {DATE}: EF 55%.
Labs drawn {DATE}; potassium 3.2.
Last dose of {drug} was on {DATE}.
Started {drug} {DATE}.
Will return on {DATE} for suture removal.
Prior admission {DATE} for {epo}.
Vaccinated with {vax} on {DATE}.
Next appointment {DATE}.""".split("\n")
AGE_SENTENCES = """{AGE90} woman with {epo} and CKD stage 3.
Patient is a {AGE90} male admitted for a fall.
She is {AGE90} and still lives independently.
He turned {AGE90} last week.
Aged {AGE90}, she walks with a cane.
Age: {AGE90}
{title} {LAST}, {AGE90}, was seen today.
My {kin} is {AGE90} and lives alone.
she's {AGENUM} and stubborn.
{NAME}, {AGENUM}, is resting comfortably.
He is {AGENUM} and lives alone.
Age: {AGENUM}
{title} {LAST}, {AGENUM}, was seen on rounds.
{NAME}, {w90}, remains alert.
{AGE90} gentleman with a history of {epo}.
At {AGE90} she remains sharp and does her own finances.""".split("\n")
ID_SENTENCES = """MRN: {ID}
MRN {ID}
Medical record number {ID}.
Chart #{ID}
Hospital no. {ID}
Member ID: {ID}
Medicaid ID {ID}
Medicare number {ID}
Subscriber #: {ID}
Policy no. {ID}
Group number {ID}
Account number {ID}
Acct# {ID}
SSN: {SSN}
Social security number {SSN}
Passport no. {ID}
Passport number {ID}
passport {ID}
Driver's license {ID}
DL# {ID}
License #{ID}
NPI {ID}
DEA {ID}
License plate {ID}
Plate {ID}
VIN {ID}
Serial number {ID}
S/N: {ID}
SN {ID}
Device ID {ID}
UDI {ID}
Pacemaker serial {ID}
Lot {ID}
Accession #: {ID}
Accession number {ID}
Acc no. {ID}
Specimen ID {ID}
Referral #{ID}
Ref no. {ID}
Authorization number {ID}
Prior auth # {ID}
Ticket {ID}
Case number {ID}
Claim #{ID}
Encounter ID {ID}
Visit number {ID}
Order #{ID}
Study ID {ID}
Subject ID: {ID}
Enrolled as participant {ID}
Trial subject code {ID}
Fingerprint ID {ID}
Employee ID {ID}
Badge {ID}
Patient ID {ID}""".split("\n")
CONTACT_SENTENCES = """Call {PHONE} with questions.
Cell: {PHONE}
Home phone {PHONE}
Daughter can be reached at {PHONE}.
Fax: {PHONE}
Fax records to {PHONE}.
Please send to {EMAIL}.
Email: {EMAIL}
Patient emailed from {EMAIL} asking about refills.
Her fundraiser page is {URL}.
Shared a link: {URL}
Portal login from IP {IP}.
Accessed from {IP} at {time}.
Tel {PHONE} / Fax {PHONE}""".split("\n")
CLINICAL_SENTENCES = """{drug} was increased to {dose}.
{drug} {dose}.
Continue {drug} {dose} and {drug} {dose}.
{drug} held for the procedure.
Started {drug} for {epo}.
Takes {drug} {weekdays}.
Methotrexate 15 mg {weekdays} with folic acid.
Dialysis {weekdays}.
Physical therapy {weekdays}.
Vitals: {num}, {num}, {num}.
Exam notable for {num} and {epo}.
{epo} negative.
Positive {epo} on the left.
History of {epo}, stable.
{epo} calculated; low risk.
Received {vax} in {year}.
Due for {vax}.
{age} with {epo}, here for follow-up.
Denies fever, chills, nausea or vomiting.
Lungs CTA bilaterally, RRR, no murmurs.
NAD, PERRLA, abdomen soft and non-tender.
Labs: {num}, {num}.
Plan: titrate {drug}, recheck {num} in 2 weeks.
Patient counseled on {drug} side effects.
Allergies: {drug} (rash).
No known drug allergies.
Smoker, {num}.
Diagnosed with {epo} in {year}.
Status post CABG in {year}.
Family history of {epo} in her mother.
{drug} and {drug} reconciled.
Switch {drug} to {drug} due to cost.
Will check {num} on {weekday}.
Follow up in {num}.
Return precautions reviewed.
Mild {epo}; {drug} as needed.
Pain controlled with {drug}.
Wound clean, dry and intact.
Ambulating with walker, {num}.
Denies SI/HI.
PHQ-9 score {small}, GAD-7 {small}.
Holter monitor placed; results pending.
Foley catheter removed {weekday} morning.
Seen {weekday}; improving.
Moved to the ICU for closer monitoring.
Blood cultures x2 pending.
Tolerating a regular diet.
Plan discussed with the team.
Next {vax} due in {year}.
Pharmacy verified {drug} dose with renal adjustment.
Insurance denied {drug}; appeal submitted.
Home health to visit {weekdays}.
{icd}.
History of {icd}.
Assessment: {icd}.
Dx: {icd}
A/P: {icd} - continue current management.
Pt c/o {icd}.
Problem list: {icd}; {icd}; {icd}.
Differential includes {icd} vs {icd}.
{prose}
{prose} {prose}
{med}, {med}, {med}.
Meds: {med}; {med}; {med}.
{med}. {num}.
Titrated {med} to goal.
Overnight: {med}, {num}.
Vitals {num}, {num}; {med}.
{Title}:
{Title}: {icd}.
{Title} - {prose}
Per {Title}, {icd} is stable.
{Title} consulted for {icd}.
{Title} {small}, {Title} {small}.
Hello, {prose}
Hi, {prose}
Thanks! {prose}
I {prose}
You {prose}
Hold {drug} for {num}.
Expect {small}-{small} weeks of recovery.
Pain {small}/10, improved from {small}/10.
Return in {small}-{small} days.
{icd}; {icd}.
Known {icd} and {icd}.
Chronic {icd}.
Admitted with {icd}.
Workup for {icd} negative.
{prose}
{prose}""".split("\n")
HEADERS = {
    "progress": ["PROGRESS NOTE\n", "Progress Note\n", "SUBJECTIVE:\n", "S: ", ""],
    "discharge": ["DISCHARGE SUMMARY\n", "Discharge Summary\nHospital course:\n", "HOSPITAL COURSE: "],
    "referral": ["Re: {NAME}\n", "RE: {LASTFIRST}, DOB {DATE}\n", "Referral letter\n", ""],
    "ed": ["ED TRIAGE NOTE\n", "Chief complaint: ", "ED Note\nHPI: "],
    "radiology": ["EXAM: CT abdomen/pelvis with contrast\n", "CHEST X-RAY, 2 VIEWS\n", "MRI BRAIN W/WO\n"],
    "portal": ["", "hi ", "hello ", "hi dr {last}, ", "Dear Dr. {LAST},\n"],
    "phone": ["Telephone encounter\n", "Phone note: ", "TC: "],
    "nursing": ["Nursing note\n", "RN shift note: ", "0700-1900: "],
    "social": ["Social work note\n", "SW: "],
    "pharmacy": ["Pharmacy note\n", "Med rec: "],
    "chat": [""],
}
SIGNOFFS = [
    "\n-- {NAME}, {role}",
    "\nElectronically signed by {NAME}, {role} on {DATE}",
    "\nSigned: {NAME}",
    "\nSincerely,\n{NAME}, MD",
    "\nThanks, {FIRST}",
    "\nthanks\n{first}",
    "\nDictated by {title} {LAST}",
    "\n{NAME}\n{role}",
    "",
    "",
]
REGISTRATION_FIELDS = [
    "PATIENT: {LASTFIRST}",
    "NAME: {LASTFIRST}",
    "Patient Name: {NAME}",
    "DOB: {DATE}",
    "SEX: F",
    "AGE: {age}",
    "AGE: {AGE90}",
    "MRN: {ID}",
    "ADDRESS: {STREET}",
    "CITY: {CITY}",
    "{CITY}, {state} {ZIP}",
    "COUNTY: {COUNTY}",
    "PHONE: {PHONE}",
    "EMAIL: {EMAIL}",
    "SSN: {SSN}",
    "INSURANCE: Medicaid",
    "MEMBER ID: {ID}",
    "GROUP #: {ID}",
    "EMERGENCY CONTACT: {NAME} ({kin}) {PHONE}",
    "NEXT OF KIN: {LASTFIRST}",
    "PCP: {title} {NAME}",
    "PHARMACY: {drug} refills via mail order",
    "LANGUAGE: Spanish",
    "ALLERGIES: {drug}",
    "ADMIT DATE: {DATE}",
    "ACCOUNT #: {ID}",
    "DRIVER LICENSE: {ID}",
    "PASSPORT: {ID}",
]


class NoteMaker:
    def __init__(self, seed: int):
        self.g = Gen(seed)
        self.r = self.g.r

    def value(self, slot: str) -> str:
        g, r = self.g, self.r
        fill = {
            "NAME": g.full,
            "NAME2": g.full,
            "FIRST": g.first,
            "LAST": g.last,
            "LASTFIRST": g.last_first,
            "CITY": g.city,
            "COUNTY": g.county,
            "ZIP": g.zip,
            "POSTCODE": g.postcode,
            "TOWN": g.town,
            "STREET": g.street,
            "NEIGH": lambda: r.choice(NEIGHBORHOODS),
            "DATE": g.date,
            "AGE90": g.age90,
            "PHONE": g.phone,
            "EMAIL": g.email,
            "URL": g.url,
            "IP": g.ip,
            "ID": g.code,
            "SSN": lambda: r.choice(
                [
                    f"{g.digits(3)}-{g.digits(2)}-{g.digits(4)}",
                    f"{g.digits(3)} {g.digits(2)} {g.digits(4)}",
                    g.digits(9),
                ]
            ),
            "first": lambda: g.first().lower(),
            "icd": g.icd_phrase,
            "Title": g.title_phrase,
            "prose": g.sentence,
            "med": g.med_line,
            "AGENUM": lambda: str(r.randint(90, 106)),
            "w90": lambda: r.choice(NUMBER_WORDS),
            "last": lambda: g.last().lower(),
            "drug": g.drug,
            "dose": g.dose,
            "weekdays": g.weekdays,
            "weekday": lambda: r.choice("Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()),
            "num": g.numbers,
            "small": lambda: str(r.randint(0, 27)),
            "epo": lambda: r.choice(EPONYMS),
            "vax": lambda: r.choice(VACCINES),
            "age": g.young_age,
            "year": lambda: str(r.randint(1950, 2026)),
            "state": lambda: r.choice(STATES),
            "statename": lambda: r.choice(STATE_NAMES),
            "country": lambda: r.choice(COUNTRIES),
            "kin": lambda: r.choice(KIN),
            "role": lambda: r.choice(ROLES),
            "title": lambda: r.choice(TITLES),
            "time": lambda: r.choice(
                [f"{r.randint(0, 23):02d}{r.choice(['00', '15', '30', '45'])}", f"{r.randint(1, 12)} pm"]
            ),
        }
        return fill[slot]()

    def render(self, b: Builder, template: str) -> None:
        last = 0
        for m in re.finditer(r"\{([A-Za-z0-9]+)\}", template):
            b.add(template[last : m.start()])
            slot = m.group(1)
            b.add(self.value(slot), PHI_SLOTS.get(slot))
            last = m.end()
        b.add(template[last:])

    def sentences(self, clean: bool, n: int) -> list[str]:
        r = self.r
        pools = [NAME_SENTENCES] * 5 + [LOCATION_SENTENCES] * 2 + [DATE_SENTENCES] * 3
        pools += [ID_SENTENCES] * 3 + [CONTACT_SENTENCES] * 2 + [AGE_SENTENCES]
        out = []
        for _ in range(n):
            if clean or r.random() < 0.72:
                out.append(r.choice(CLINICAL_SENTENCES))
            else:
                out.append(r.choice(r.choice(pools)))
        return out

    def note(self, clean: bool | None = None) -> Note:
        r = self.r
        clean = r.random() < 0.4 if clean is None else clean
        genre = r.choice(list(HEADERS) + ["registration", "registration"])
        b = Builder()
        if genre == "registration" and not clean:
            fields = r.sample(REGISTRATION_FIELDS, r.randint(4, 10))
            sep = r.choice(["\n", "\n", " | ", "   "])
            for k, f in enumerate(fields):
                self.render(b, (sep if k else "") + f)
            b.add("\n")
            for s in self.sentences(True, r.randint(0, 3)):
                self.render(b, s + " ")
        else:
            if genre == "registration":
                genre = "progress"
            header = r.choice(HEADERS[genre])
            if clean:
                header = re.sub(r"\{[A-Z0-9]+\}", "the patient", header)
            self.render(b, header)
            joiner = r.choice([" ", " ", "\n", "\n- "])
            for k, s in enumerate(self.sentences(clean, r.randint(3, 12))):
                if genre == "chat":
                    s = r.choice(["Patient: ", "Nurse: ", "Pt: ", "RN: "]) + s
                    joiner = "\n"
                self.render(b, (joiner if k else "") + s)
            sign = r.choice(SIGNOFFS)
            if not clean:
                self.render(b, sign)
        note = b.note(genre)
        return self.cased(note)

    def cased(self, note: Note) -> Note:
        """Portal messages and chats often come lower-case, registration blocks upper-case."""
        r = self.r
        p = r.random()
        lower = (note.genre in ("portal", "chat") and p < 0.5) or p < 0.05
        upper = (note.genre == "registration" and p < 0.6) or (0.05 <= p < 0.08)
        text = note.text.lower() if lower else note.text.upper() if upper else note.text
        if len(text) != len(note.text):  # a letter whose case changes its length (ß): keep the note as written
            return note
        return Note(text, note.spans, note.genre)


def notes(n: int, seed: int) -> list[Note]:
    maker = NoteMaker(seed)
    return [maker.note() for _ in range(n)]
