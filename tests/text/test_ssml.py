"""The SSML subset: segments, say-as, errors that point at the position, unsafe XML refused."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtvoice.config import SynthesisConfig, VoiceConfig
from rtvoice.errors import SsmlError, TextError
from rtvoice.prosody import Prosody
from rtvoice.script import prepare
from rtvoice.ssml import Break, Speech, is_ssml, parse
from rtvoice.voice import DEFAULT_VOICE


def test_is_ssml_needs_a_leading_speak() -> None:
    assert is_ssml("<speak>Hi.</speak>")
    assert is_ssml('  <?xml version="1.0"?>\n<speak version="1.1">Hi.</speak>')
    assert is_ssml('<!DOCTYPE speak [<!ENTITY a "b">]><speak>&a;</speak>')
    assert not is_ssml("Say <speak> aloud.")
    assert not is_ssml("<speaker>Hi.</speaker>")


def test_text_prosody_and_breaks_become_segments_in_order() -> None:
    doc = ('<speak>Hello <break time="500ms"/> world. <prosody rate="150%" volume="-6dB">Quick</prosody> end.'
           '<break strength="strong"/></speak>')
    assert parse(doc) == [
        Speech("Hello"), Break(0.5), Speech("world.", continues=True),
        Speech("Quick", rate=1.5, volume=pytest.approx(10 ** (-6 / 20)), continues=True),
        Speech("end.", continues=True), Break(0.7)]


def test_paragraphs_and_sentences_start_new_sentences() -> None:
    segments = parse("<speak><p><s>One</s><s>Two</s></p><p>Three</p></speak>")
    assert segments == [Speech("One"), Speech("Two"), Break(0.5, explicit=False), Speech("Three"),
                        Break(0.5, explicit=False)]


def test_namespaced_ssml_and_nested_prosody_multiply() -> None:
    doc = ('<speak xmlns="http://www.w3.org/2001/10/synthesis" version="1.1">'
           '<prosody rate="x-slow"><prosody rate="2">Even</prosody></prosody></speak>')
    assert parse(doc) == [Speech("Even", rate=1.0)]


@pytest.mark.parametrize(("element", "words"), [
    ('<say-as interpret-as="characters">IBM</say-as>', "eye bee em"),
    ('<say-as interpret-as="cardinal">1,234</say-as>', "one thousand, two hundred thirty-four"),
    ('<say-as interpret-as="ordinal">22nd</say-as>', "twenty-second"),
    ('<say-as interpret-as="digits">0123</say-as>', "zero one two three"),
    ('<say-as interpret-as="date">12/25/2026</say-as>', "December twenty-fifth, twenty twenty-six"),
    ('<say-as interpret-as="date" format="dmy">25/12/2026</say-as>', "December twenty-fifth, twenty twenty-six"),
    ('<say-as interpret-as="date">2026-12-25</say-as>', "December twenty-fifth, twenty twenty-six"),
    ('<say-as interpret-as="time">10:30 PM</say-as>', "ten thirty pee em"),
    ('<say-as interpret-as="time">22:05</say-as>', "twenty-two oh five"),
    ('<say-as interpret-as="telephone">555-0123</say-as>', "five five five, zero one two three"),
    ('<sub alias="World Wide Web">WWW</sub>', "World Wide Web"),
    ("<emphasis>really</emphasis>", "really"),
    ('<phoneme alphabet="ipa" ph="təˈmɑːtəʊ">tomato</phoneme>', "tomato"),
])
def test_say_as_sub_and_emphasis_read_as_words(element: str, words: str) -> None:
    assert parse(f"<speak>{element}</speak>") == [Speech(words)]


@pytest.mark.parametrize(("doc", "message"), [
    ("<speak>Hello\n  <b>x</speak>", "Malformed SSML at line 2, column 9: mismatched tag"),
    ("<speak>Fish &amp; chips &nbsp;</speak>", "Malformed SSML at line 1, column 25: undefined entity"),
    ("<speak>Hi", "Malformed SSML at line 1, column 10: no element found"),
    ("<voice>Hi</voice>", "root element is <voice> at line 1, column 1; it must be <speak>"),
    ("<speak>Hi\n<audio-x/></speak>", "Unsupported SSML element <audio-x> at line 2, column 1"),
    ('<speak><break time="5"/></speak>', "give a time like '500ms'"),
    ('<speak><break time="11s"/></speak>', "longer than 10 s"),
    ('<speak><break strength="huge"/></speak>', "use one of none, x-weak"),
    ('<speak><prosody rate="3">x</prosody></speak>', "<prosody rate='3'> at line 1, column 8"),
    ('<speak><prosody volume="loudest">x</prosody></speak>', "<prosody volume='loudest'>"),
    ('<speak><say-as interpret-as="cardinal">ten</say-as></speak>', "'ten' is not a whole number"),
    ('<speak><say-as interpret-as="date">13/40/2026</say-as></speak>', "month 13 is not 1-12"),
    ('<speak><say-as interpret-as="kana">x</say-as></speak>', "use one of characters"),
    ("<speak><sub>x</sub></speak>", "needs an alias"),
    ("<speak>" + "<s>" * 40 + "x" + "</s>" * 40 + "</speak>", "deeper than 32 elements"),
])
def test_bad_ssml_gets_one_line_naming_the_place(doc: str, message: str) -> None:
    with pytest.raises(SsmlError) as caught:
        parse(doc)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, TextError)  # every interface already answers TextError as bad input


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE speak [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<speak>&lol9;</speak>"""


@pytest.fixture
def secret_server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """An HTTP server that records every request: an external entity or DTD must never reach it."""
    (tmp_path / "evil.dtd").write_text('<!ENTITY leak "LEAKED">')
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)  # type: ignore[arg-type]

        def log_message(self, fmt: str, *args: object) -> None:
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    thread.join()


def test_entity_expansion_is_refused(secret_server: tuple[str, list[str]]) -> None:
    with pytest.raises(SsmlError, match="refused: it declares a DTD"):
        parse(BILLION_LAUGHS)


def test_external_entities_and_dtds_are_refused_without_reading_them(secret_server: tuple[str, list[str]],
                                                                     tmp_path: Path) -> None:
    url, requests = secret_server
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    attacks = [
        f'<!DOCTYPE speak [<!ENTITY xxe SYSTEM "file://{secret}">]><speak>&xxe;</speak>',
        f'<!DOCTYPE speak [<!ENTITY xxe SYSTEM "{url}/secret.txt">]><speak>&xxe;</speak>',
        f'<!DOCTYPE speak SYSTEM "{url}/evil.dtd"><speak>&leak;</speak>',
        f'<!DOCTYPE speak [<!ENTITY % p SYSTEM "{url}/evil.dtd"> %p;]><speak>&leak;</speak>',
    ]
    for doc in attacks:
        with pytest.raises(SsmlError, match="refused") as caught:
            parse(doc)
        assert "SECRET" not in str(caught.value) and "LEAKED" not in str(caught.value)
    assert requests == []


@pytest.fixture(scope="module")
def voice_config() -> VoiceConfig:
    return VoiceConfig.load(DEFAULT_VOICE)


def test_script_puts_breaks_between_sentences_and_scales_rate_and_volume(voice_config: VoiceConfig) -> None:
    settings = SynthesisConfig(rate=1.2, volume=0.5).resolve(voice_config)
    doc = ('<speak><break time="300ms"/>First one. Second one.<break time="1s"/>'
           '<prosody rate="fast" volume="x-loud">Third</prosody> goes on.<p>Fourth.</p><p>Fifth.</p>'
           '<break time="250ms"/></speak>')
    script = prepare(doc, voice_config, settings)
    assert [s.text.lower() for s in script.sentences] == ["first one.", "second one.", "third", "goes on.",
                                                         "fourth.", "fifth."]
    assert [s.index for s in script.sentences] == list(range(6))
    assert script.prosody == [
        Prosody(1.2, 0.5, pause_before_s=0.3),  # default pause after the first: the voice's sentence pause
        Prosody(1.2, 0.5, pause_after_s=1.0),
        Prosody(pytest.approx(1.56), 1.0, pause_after_s=0.0),  # "goes on." continues the same sentence
        Prosody(1.2, 0.5, pause_after_s=None),
        Prosody(1.2, 0.5, pause_after_s=0.5),  # the end of a paragraph
        Prosody(1.2, 0.5, pause_after_s=0.25),  # a break at the very end is kept
    ]


def test_plain_text_is_not_parsed_unless_asked(voice_config: VoiceConfig) -> None:
    plain = prepare("Hi <b>there</b>.", voice_config, SynthesisConfig().resolve(voice_config))
    assert len(plain.sentences) == 1 and plain.prosody == [Prosody()]
    with pytest.raises(SsmlError, match="root element is <b>"):
        prepare("<b>there</b>", voice_config, SynthesisConfig(ssml=True).resolve(voice_config))
    as_text = prepare("<speak>x</speak>", voice_config, SynthesisConfig(ssml=False).resolve(voice_config))
    assert "speak" in as_text.sentences[0].text


def test_ssml_with_nothing_to_say_or_too_long_is_refused(voice_config: VoiceConfig) -> None:
    settings = SynthesisConfig().resolve(voice_config)
    with pytest.raises(TextError, match="nothing speakable"):
        prepare('<speak><break time="1s"/>...</speak>', voice_config, settings)
    long = "<speak>" + "word " * 1000 + "</speak>"
    with pytest.raises(TextError, match="limit is 5000"):
        prepare(long, voice_config, settings)


@given(st.text(max_size=60), st.sampled_from(["", "<speak>", "<speak><p>", "<speak><say-as interpret-as=\"date\">"]))
@settings(max_examples=300, deadline=None)
def test_any_input_gives_segments_or_an_ssml_error(body: str, opening: str) -> None:
    closing = {"": "", "<speak>": "</speak>", "<speak><p>": "</p></speak>"}.get(opening, "</say-as></speak>")
    try:
        segments = parse(opening + body + closing)
    except SsmlError as exc:
        assert "\n" not in str(exc)
    else:
        assert all(isinstance(s, Speech | Break) for s in segments)


@pytest.mark.parametrize(("text", "words"), [("2026", "twenty twenty-six"), ("2026-12", "December, twenty twenty-six")])
def test_a_leading_four_digit_field_is_the_year(text: str, words: str) -> None:
    assert parse(f'<speak><say-as interpret-as="date">{text}</say-as></speak>') == [Speech(words)]


def test_a_lone_surrogate_is_an_ssml_error() -> None:
    with pytest.raises(SsmlError, match="lone surrogate at offset 7"):
        parse("<speak>\ud800</speak>")
