"""datatrove's English word splitter without spaCy: spaCy's English tokenizer rules in plain Python.

datatrove 0.10 splits English words with spaCy's blank English tokenizer (`datatrove_words`): text is cut
at whitespace, then each chunk loses prefixes and suffixes (punctuation, quotes, currency, units after a
number, a final period) and is cut at infixes (hyphens between letters, `x=y`, `2*3`), except for special
cases (contractions: "don't" -> "do" "n't"; abbreviations: "Mr.", "e.g."; emoticons: "):", "<3").
`affix_words` follows the same algorithm with the same English rules, copied from spaCy 3.8 (ASCII and
Latin-1 letters; symbols and emoji for its icon class), so the Gopher filters measure repetition on the
words datatrove measures (bench/filters_parity.py: same tokens on 94-99% of documents) at 3x spaCy's speed.
"""

from __future__ import annotations

import re

_PUNCT = r"…|……|,|:|;|!|\?|¿|؟|¡|\(|\)|\[|\]|\{|\}|<|>|_|#|\*|&|。|？|！|，|、|；|：|～|·|।|،|۔|؛|٪"
_QUOTES = r"""'|"|”|“|`|‘|´|’|‚|,|„|»|«|「|」|『|』|（|）|〔|〕|【|】|《|》|〈|〉|〈|〉|⟦|⟧"""
_CURRENCY = r"\$|£|€|¥|฿|US\$|C\$|A\$|₽|₹|₩|₪|₫|₱|₿"
_ICONS = r"[\u00A6\u00A9\u00AE\u00B0\u2100-\u214F\u2190-\u21FF\u2300-\u23FF\u2500-\u27BF\u2B00-\u2BFF\U0001F000-\U0001FAFF]"
_UNITS = ("km km² km³ m m² m³ dm dm² dm³ cm cm² cm³ mm mm² mm³ ha µm nm yd in ft kg g mg µg t lb oz m/s km/h kmh "
          "mph hPa Pa mbar mb MB kb KB gb GB tb TB T G M K %").split()
_HYPHENS = r"-|–|—|--|---|——|~"
_LOWER, _UPPER = r"a-zà-öø-ÿ", r"A-ZÀ-ÖØ-Þ"
_ALPHA = _LOWER + _UPPER
_Q = r"'\"”“`‘´’‚,„»«"
_ELLIPSES = r"\.\.+|…"
_UNIT = "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
_PREFIX = re.compile(rf"^(?:§|%|=|—|–|\+(?![0-9])|{_PUNCT}|{_ELLIPSES}|{_QUOTES}|{_CURRENCY}|{_ICONS})")
_SUFFIX = re.compile(rf"(?:(?:{_PUNCT}|{_ELLIPSES}|{_QUOTES}|{_ICONS}|'s|'S|’s|’S|—|–|(?<=[0-9])\+|(?<=°[FfCcKk])\."
                     rf"|(?<=[0-9])(?:{_CURRENCY})|(?<=[0-9])(?:{_UNIT})"
                     rf"|(?<=[0-9{_LOWER}%²\-\+…{_Q}…,:;!?¿¡()\[\]{{}}<>_#*&])\.|(?<=[{_UPPER}][{_UPPER}])\.)$)")
_INFIX = re.compile(rf"{_ELLIPSES}|{_ICONS}|(?<=[0-9])[+\-\*^](?=[0-9-])|(?<=[{_LOWER}{_Q}])\.(?=[{_UPPER}{_Q}])"
                    rf"|(?<=[{_ALPHA}]),(?=[{_ALPHA}])|(?<=[{_ALPHA}0-9])(?:{_HYPHENS})(?=[{_ALPHA}])"
                    rf"|(?<=[{_ALPHA}0-9])[:<>=/](?=[{_ALPHA}])")
_URL = re.compile(r"^(?:https?://|www\.)\S+$")
# special cases kept whole: emoticons, abbreviations and clitics spaCy knows
_SPECIAL = set("""
'' (*_*) (-8 (-: (-; (-_-) (._.) (: (; (= (>_<) (^_^) (¬_¬) )-: ): -_- -__- ._. 0.0 0_0 8) 8-) :'( :') :'-( :'-)
:( :(( :((( :() :) :)) :))) :* :-( :-(( :-((( :-) :-)) :-))) :-* :-/ :-0 :-3 :-> :-P :-] :-p :-| :-} :/ :0 :1 :3
:> :P :] :p :| :} :’( :’) :’-( :’-) ;) ;-) ;_; <.< </3 <3 <33 <333 =( =) =/ =3 =[ =] =| >.< >.> >:( ><(((*> @_@
XD XDD [-: [: [= \\") ]= ^_^ ^__^ ^___^ xD xDD — ’ ’’ 0.o 10a.m. 10p.m. 11a.m. 11p.m. 12a.m. 12p.m. 1a.m. 1p.m. 2a.m. 2p.m. 3a.m. 3p.m. 4a.m. 4p.m. 5a.m. 5p.m. 6a.m.
6p.m. 7a.m. 7p.m. 8a.m. 8p.m. 9a.m. 9p.m. Adm. Ak. Ala. Apr. Ariz. Ark. Aug. Bros. Calif. Co. Colo. Conn. Corp.
D.C. Dec. Del. Dr. E.G. E.g. Feb. Fla. Ga. Gen. Gov. I.E. I.e. Ia. Id. Ill. Inc. Ind. Jan. Jr. Jul. Jun. Kan.
Kans. Ky. La. Ltd. Mar. Mass. Md. Messrs. Mich. Minn. Miss. Mo. Mont. Mr. Mrs. Ms. Mt. N.C. N.D. N.H. N.J. N.M.
N.Y. Neb. Nebr. Nev. Nov. O.O O.o Oct. Okla. Ore. Pa. Ph.D. Prof. Rep. Rev. S.C. Sen. Sep. Sept. St. Tenn. V.V
Va. Wash. Wis. a. a.m. b. c. co. d. e. e.g. f. g. h. i. i.e. j. k. l. m. n. o. o.0 o.O o.o p. p.m. q. r. s. t.
u. v. v.s. v.v vs. w. x. y. z. °C. °F. °K. °c. °f. °k. ä. ö. ü. 'em 'Em 'cause 'Cause 'cos 'Cos 'coz 'Coz 'cuz
'Cuz 'bout 'nuff o'clock O'clock ma'am Ma'am 'S 's 'd 'll 're 'em ’em
""".split())
# special cases spaCy splits although they have no apostrophe ("dont" -> "do" "nt", "10am" -> "10" "am")
_SPLIT_SPECIAL = {k: v.split("+") for k, v in (pair.split("=") for pair in """
10am=10+am 10pm=10+pm 11am=11+am 11pm=11+pm 12am=12+am 12pm=12+pm 1am=1+am 1pm=1+pm 2am=2+am 2pm=2+pm 3am=3+am
3pm=3+pm 4am=4+am 4pm=4+pm 5am=5+am 5pm=5+pm 6am=6+am 6pm=6+pm 7am=7+am 7pm=7+pm 8am=8+am 8pm=8+pm 9am=9+am
9pm=9+pm Aint=Ai+nt Arent=Are+nt Cannot=Can+not Cant=Ca+nt Cantve=Ca+nt+ve Couldnt=Could+nt
Couldntve=Could+nt+ve Couldve=Could+ve Darent=Dare+nt Didnt=Did+nt Didntve=Did+nt+ve Doesnt=Does+nt
Doesntve=Does+nt+ve Dont=Do+nt Dontve=Do+nt+ve Gonna=Gon+na Gotta=Got+ta Hadnt=Had+nt Hadntve=Had+nt+ve
Hasnt=Has+nt Havent=Have+nt Hed=He+d Hedve=He+d+ve Hellve=He+ll+ve Hes=He+s Howd=How+d Howdve=How+d+ve
Howll=How+ll Howllve=How+ll+ve Howre=How+re Hows=How+s Howve=How+ve Id=I+d Idve=I+d+ve Illve=I+ll+ve Im=I+m
Ima=I+m+a Isnt=Is+nt Itd=It+d Itdve=It+d+ve Itll=It+ll Itllve=It+ll+ve Ive=I+ve Maynt=May+nt Mayntve=May+nt+ve
Mightnt=Might+nt Mightntve=Might+nt+ve Mightve=Might+ve Mustnt=Must+nt Mustntve=Must+nt+ve Mustve=Must+ve
Neednt=Need+nt Needntve=Need+nt+ve Notve=Not+ve Oughtnt=Ought+nt Oughtntve=Ought+nt+ve Shant=Sha+nt
Shantve=Sha+nt+ve Shedve=She+d+ve Shellve=She+ll+ve Shes=She+s Shouldnt=Should+nt Shouldntve=Should+nt+ve
Shouldve=Should+ve Thatd=That+d Thatdve=That+d+ve Thatll=That+ll Thatllve=That+ll+ve Thats=That+s Thered=There+d
Theredve=There+d+ve Therell=There+ll Therellve=There+ll+ve Therere=There+re Theres=There+s Thereve=There+ve
Thesed=These+d Thesedve=These+d+ve Thesell=These+ll Thesellve=These+ll+ve Thesere=These+re Theseve=These+ve
Theyd=They+d Theydve=They+d+ve Theyll=They+ll Theyllve=They+ll+ve Theyre=They+re Theyve=They+ve Thisd=This+d
Thisdve=This+d+ve Thisll=This+ll Thisllve=This+ll+ve Thiss=This+s Thosed=Those+d Thosedve=Those+d+ve
Thosell=Those+ll Thosellve=Those+ll+ve Thosere=Those+re Thoseve=Those+ve Wasnt=Was+nt Wed=We+d Wedve=We+d+ve
Wellve=We+ll+ve Werent=Were+nt Weve=We+ve Whatd=What+d Whatdve=What+d+ve Whatll=What+ll Whatllve=What+ll+ve
Whatre=What+re Whats=What+s Whatve=What+ve Whend=When+d Whendve=When+d+ve Whenll=When+ll Whenllve=When+ll+ve
Whenre=When+re Whens=When+s Whenve=When+ve Whered=Where+d Wheredve=Where+d+ve Wherell=Where+ll
Wherellve=Where+ll+ve Wherere=Where+re Wheres=Where+s Whereve=Where+ve Whod=Who+d Whodve=Who+d+ve Wholl=Who+ll
Whollve=Who+ll+ve Whos=Who+s Whove=Who+ve Whyd=Why+d Whydve=Why+d+ve Whyll=Why+ll Whyllve=Why+ll+ve Whyre=Why+re
Whys=Why+s Whyve=Why+ve Wont=Wo+nt Wontve=Wo+nt+ve Wouldnt=Would+nt Wouldntve=Would+nt+ve Wouldve=Would+ve
Youd=You+d Youdve=You+d+ve Youll=You+ll Youllve=You+ll+ve Youre=You+re Youve=You+ve aint=ai+nt arent=are+nt
cannot=can+not cant=ca+nt cantve=ca+nt+ve couldnt=could+nt couldntve=could+nt+ve couldve=could+ve darent=dare+nt
didnt=did+nt didntve=did+nt+ve doesnt=does+nt doesntve=does+nt+ve dont=do+nt dontve=do+nt+ve gonna=gon+na
gotta=got+ta hadnt=had+nt hadntve=had+nt+ve hasnt=has+nt havent=have+nt hed=he+d hedve=he+d+ve hellve=he+ll+ve
hes=he+s howd=how+d howdve=how+d+ve howll=how+ll howllve=how+ll+ve howre=how+re hows=how+s howve=how+ve id=i+d
idve=i+d+ve illve=i+ll+ve im=i+m ima=i+m+a isnt=is+nt itd=it+d itdve=it+d+ve itll=it+ll itllve=it+ll+ve ive=i+ve
maynt=may+nt mayntve=may+nt+ve mightnt=might+nt mightntve=might+nt+ve mightve=might+ve mustnt=must+nt
mustntve=must+nt+ve mustve=must+ve neednt=need+nt needntve=need+nt+ve notve=not+ve oughtnt=ought+nt
oughtntve=ought+nt+ve shant=sha+nt shantve=sha+nt+ve shedve=she+d+ve shellve=she+ll+ve shes=she+s
shouldnt=should+nt shouldntve=should+nt+ve shouldve=should+ve thatd=that+d thatdve=that+d+ve thatll=that+ll
thatllve=that+ll+ve thats=that+s thered=there+d theredve=there+d+ve therell=there+ll therellve=there+ll+ve
therere=there+re theres=there+s thereve=there+ve thesed=these+d thesedve=these+d+ve thesell=these+ll
thesellve=these+ll+ve thesere=these+re theseve=these+ve theyd=they+d theydve=they+d+ve theyll=they+ll
theyllve=they+ll+ve theyre=they+re theyve=they+ve thisd=this+d thisdve=this+d+ve thisll=this+ll
thisllve=this+ll+ve thiss=this+s thosed=those+d thosedve=those+d+ve thosell=those+ll thosellve=those+ll+ve
thosere=those+re thoseve=those+ve wasnt=was+nt wed=we+d wedve=we+d+ve wellve=we+ll+ve werent=were+nt weve=we+ve
whatd=what+d whatdve=what+d+ve whatll=what+ll whatllve=what+ll+ve whatre=what+re whats=what+s whatve=what+ve
whend=when+d whendve=when+d+ve whenll=when+ll whenllve=when+ll+ve whenre=when+re whens=when+s whenve=when+ve
whered=where+d wheredve=where+d+ve wherell=where+ll wherellve=where+ll+ve wherere=where+re wheres=where+s
whereve=where+ve whod=who+d whodve=who+d+ve wholl=who+ll whollve=who+ll+ve whos=who+s whove=who+ve whyd=why+d
whydve=why+d+ve whyll=why+ll whyllve=why+ll+ve whyre=why+re whys=why+s whyve=why+ve wont=wo+nt wontve=wo+nt+ve
wouldnt=would+nt wouldntve=would+nt+ve wouldve=would+ve yall=y+all youd=you+d youdve=you+d+ve youll=you+ll
youllve=you+ll+ve youre=you+re youve=you+ve
""".split())}
_CLITIC = re.compile(r"^([^\W\d_]+?)(n['’]t|N['’]T|['’](?:ll|re|ve|d|m|LL|RE|VE|D|M))$")
# the words a clitic is split from (spaCy's contraction exceptions); others stay whole ("look'd")
_BASES = {
    "n't": set("ai are ca could dare did do does had has have is may might must need ought sha should was were wo "
               "would".split()),
    "'ve": set("could how i might must not should there these they those we what when where who why would you".split()),
    "'d": set("he how i it she that there these they this those we what when where who why you".split()),
    "'ll": set("he how i it she that there these they this those we what when where who why you".split()),
    "'re": set("how there these they those we what when where who why you".split()),
    "'m": {"i"},
}
_CHUNKS = re.compile(r"\S+")


def affix_words(text: str) -> list[str]:
    """The words of `text` as spaCy's English tokenizer (and so datatrove 0.10) splits them, whitespace dropped."""
    out: list[str] = []
    for m in _CHUNKS.finditer(text):
        chunk = m.group()
        if chunk.isascii() and (chunk.isalpha() or chunk.isdigit()) and chunk not in _SPLIT_SPECIAL:
            out.append(chunk)  # most words: nothing to split
        else:
            first = len(out)
            _split_chunk(chunk, out)
            _merge_specials(out, first)
    return out


def _split_chunk(s: str, out: list[str]) -> None:
    """spaCy's `_split_affixes` then `_attach_tokens` on one whitespace-free chunk."""
    prefixes: list[str] = []
    suffixes: list[str] = []
    last = -1
    while s and len(s) != last and not (_URL.match(s) or _whole(s)):
        last = len(s)
        m = _PREFIX.search(s)
        pre = m.end() if m else 0
        if pre and _whole(s[pre:]):
            prefixes.append(s[:pre])
            s = s[pre:]
            break
        m = _SUFFIX.search(s[pre:])
        suf = len(m.group()) if m else 0
        if suf and _whole(s[:-suf]):
            suffixes.append(s[-suf:])
            s = s[:-suf]
            break
        if pre and suf and pre + suf <= len(s):
            prefixes.append(s[:pre])
            suffixes.append(s[-suf:])
            s = s[pre:-suf]
        elif pre:
            prefixes.append(s[:pre])
            s = s[pre:]
        elif suf:
            suffixes.append(s[-suf:])
            s = s[:-suf]
    out.extend(prefixes)
    if s:
        out.extend(_middle(s))
    out.extend(reversed(suffixes))


def _whole(s: str) -> bool:
    return s in _SPECIAL or s in _SPLIT_SPECIAL


def _middle(s: str) -> list[str]:
    """What is left of a chunk after its affixes: a special case, a URL, a contraction, or cut at infixes."""
    if s in _SPECIAL or _URL.match(s):
        return [s]
    if s in _SPLIT_SPECIAL:
        return _SPLIT_SPECIAL[s]
    clitic = _CLITIC.match(s)
    if clitic and clitic.group(1).lower() in _BASES.get(clitic.group(2).lower().replace("’", "'"), ()) \
            and not _INFIX.search(s):
        return list(clitic.groups())
    parts, start = [], 0
    for m in _INFIX.finditer(s):
        if m.start() > start:
            parts.append(s[start:m.start()])
        if m.end() > m.start():
            parts.append(m.group())
        start = m.end()
    if start < len(s):
        parts.append(s[start:])
    return parts


def _merge_specials(out: list[str], first: int) -> None:
    """Merge tokens of one chunk that spell a special case, as spaCy does ("):" from ")" and ":")."""
    i = first
    while i < len(out):
        for j in range(min(len(out), i + 4), i + 1, -1):
            if "".join(out[i:j]) in _SPECIAL:
                out[i:j] = ["".join(out[i:j])]
                break
        i += 1
