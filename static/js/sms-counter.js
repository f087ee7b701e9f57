// The SMS length counter: how many characters and SMS parts a text costs, live, by
// the same rules as campaigns.sms.sms_parts (a test runs both over the same table).
// GSM-7: 160 in one SMS, 153 per part of a longer one; the extension characters
// ^ { } \ [ ~ ] | € and form feed count 2. One character outside the GSM alphabet
// (a Polish letter, „, an emoji) makes the whole text UCS-2: 70, then 67 per part,
// counted in UTF-16 units (an emoji is 2). An escape pair or a surrogate pair never
// straddles two parts.
//
// Markup (no inline script: the page will get a strict CSP):
//
//   <textarea name="text" data-sms-counter="sms-count"></textarea>
//   <output id="sms-count" aria-live="polite" ...attributes...></output>
//
// The textarea names the element to write into. That element's attributes hold
// the words, translated by the server (campaigns.sms.sms_counter_attrs() renders
// them all; flatatt() turns the dict into attributes):
//
//   data-format         the summary, "{characters} / {limit} · {parts} SMS · {encoding}";
//                       placeholders {characters}, {limit} (what the parts used so far
//                       hold: 160, 306, ...), {parts}, {remaining} (left in the last
//                       part), {encoding} ("GSM-7" or "UCS-2")
//   data-format-one, -few, -many, -other
//                       the summary for that plural category of {parts}, picked with
//                       Intl.PluralRules in the page's language (lang attribute);
//                       data-format when the category has none
//   data-label-tags     a note shown while the text has merge tags ({{ first_name }});
//                       {length} is the tag length
//   data-label-unicode  a note shown for a UCS-2 text; {chars} lists the characters
//                       outside the GSM alphabet (invisible ones as U+00A0, ...)
//   data-tag-length     how many characters a merge tag counts as (10 if unset); the
//                       textarea's own data-tag-length wins
//
// With children [data-sms-summary] and [data-sms-notes] the summary and the notes go
// there; otherwise the element's text is the summary followed by the notes. The
// element also gets data-encoding ("GSM-7"/"UCS-2"), data-parts and data-tags
// ("1" while the text has merge tags) for styling. Code that changes the textarea's
// value itself dispatches an "input" event on it. Textareas that htmx swaps in are
// counted too (htmx:load).
//
// In Node (the tests) the file exports {smsParts, nonGsm7} instead of touching a page.
(function () {
  "use strict";

  var BASIC =
    "@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5" +
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\u00c6\u00e6\u00df" +
    "\u00c9 !\"#\u00a4%&'()*+,-./0123456789:;<=>?\u00a1" +
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7\u00bf" +
    "abcdefghijklmnopqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0";
  var EXTENSION = "\f^{}\\[~]|\u20ac";
  var GSM_SINGLE = 160;
  var GSM_PART = 153;
  var UCS_SINGLE = 70;
  var UCS_PART = 67;
  var MERGE_TAG = /\{\{\s*[A-Za-z_][A-Za-z0-9_]*\s*\}\}/g;  // as campaigns.rendering reads them
  var DEFAULT_TAG_LENGTH = 10;
  var DEFAULT_FORMAT = "{characters} / {limit} \u00b7 {parts} SMS \u00b7 {encoding}";
  var INVISIBLE = /[\s\u0000-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u2028-\u202f\u2060\ufeff]/;

  // The text's characters (code points: a surrogate pair is one).
  function characters(text) {
    var out = [];
    for (var i = 0; i < text.length; i++) {
      var code = text.charCodeAt(i);
      if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
        var next = text.charCodeAt(i + 1);
        if (next >= 0xdc00 && next <= 0xdfff) {
          out.push(text.slice(i, i + 2));
          i += 1;
          continue;
        }
      }
      out.push(text.charAt(i));
    }
    return out;
  }

  function isGsm(char) {
    return BASIC.indexOf(char) !== -1 || EXTENSION.indexOf(char) !== -1;
  }

  function repeat(char, count) {
    var out = "";
    for (var i = 0; i < count; i++) {
      out += char;
    }
    return out;
  }

  function nonGsm7(text) {
    var seen = [];
    characters(text).forEach(function (char) {
      if (!isGsm(char) && seen.indexOf(char) === -1) {
        seen.push(char);
      }
    });
    return seen;
  }

  // Like sms_parts(text, tag_length=...): tagLength null counts tags as written.
  function smsParts(text, tagLength) {
    if (tagLength !== null && tagLength !== undefined) {
      text = text.replace(MERGE_TAG, repeat("x", Math.max(tagLength, 0)));
    }
    var chars = characters(text);
    var gsm = chars.every(isGsm);
    var single = gsm ? GSM_SINGLE : UCS_SINGLE;
    var multi = gsm ? GSM_PART : UCS_PART;
    var units = chars.map(function (char) {
      if (gsm) {
        return EXTENSION.indexOf(char) !== -1 ? 2 : 1;
      }
      return char.length;
    });
    var total = units.reduce(function (sum, size) {
      return sum + size;
    }, 0);
    var parts;
    var perPart;
    var used;
    if (total <= single) {
      parts = total ? 1 : 0;
      perPart = single;
      used = total;
    } else {
      parts = 1;
      perPart = multi;
      used = 0;
      units.forEach(function (size) {
        if (used + size > multi) {
          parts += 1;
          used = 0;
        }
        used += size;
      });
    }
    return {
      encoding: gsm ? "GSM-7" : "UCS-2",
      characters: total,
      parts: parts,
      perPart: perPart,
      remaining: perPart - used,
      limit: perPart * Math.max(parts, 1),
    };
  }

  if (typeof module === "object" && module.exports) {
    module.exports = { smsParts: smsParts, nonGsm7: nonGsm7 };
  }
  if (typeof document === "undefined") {
    return;
  }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (match, key) {
      return Object.prototype.hasOwnProperty.call(values, key) ? String(values[key]) : match;
    });
  }

  function pluralCategory(element, count) {
    var holder = element.closest("[lang]") || document.documentElement;
    var lang = holder.getAttribute("lang") || "en";
    try {
      return new Intl.PluralRules(lang).select(count);
    } catch (error) {
      return "other";
    }
  }

  function visible(char) {
    if (!INVISIBLE.test(char)) {
      return char;
    }
    var hex = char.codePointAt(0).toString(16).toUpperCase();
    return "U+" + repeat("0", Math.max(4 - hex.length, 0)) + hex;
  }

  function tagLength(textarea, output) {
    var raw = textarea.getAttribute("data-tag-length") || output.getAttribute("data-tag-length");
    var value = parseInt(raw, 10);
    return isNaN(value) || value < 0 ? DEFAULT_TAG_LENGTH : value;
  }

  function update(textarea) {
    var output = document.getElementById(textarea.getAttribute("data-sms-counter"));
    if (!output) {
      return;
    }
    var text = textarea.value;
    var length = tagLength(textarea, output);
    var hasTags = text.search(MERGE_TAG) !== -1;
    var result = smsParts(text, length);
    var format =
      output.getAttribute("data-format-" + pluralCategory(output, result.parts)) ||
      output.getAttribute("data-format") ||
      DEFAULT_FORMAT;
    var summary = fill(format, result);
    var notes = [];
    if (hasTags && output.getAttribute("data-label-tags")) {
      notes.push(fill(output.getAttribute("data-label-tags"), { length: length }));
    }
    if (result.encoding === "UCS-2" && output.getAttribute("data-label-unicode")) {
      var chars = nonGsm7(text.replace(MERGE_TAG, "")).slice(0, 10).map(visible);
      notes.push(fill(output.getAttribute("data-label-unicode"), { chars: chars.join(" ") }));
    }
    var summaryBox = output.querySelector("[data-sms-summary]");
    var notesBox = output.querySelector("[data-sms-notes]");
    if (summaryBox && notesBox) {
      summaryBox.textContent = summary;
      notesBox.textContent = notes.join(" ");
      notesBox.hidden = !notes.length;
    } else {
      output.textContent = [summary].concat(notes).join(" ");
    }
    output.setAttribute("data-encoding", result.encoding);
    output.setAttribute("data-parts", String(result.parts));
    output.setAttribute("data-tags", hasTags ? "1" : "0");
  }

  function updateAll(root) {
    var scope = root && root.querySelectorAll ? root : document;
    var fields = scope.querySelectorAll("textarea[data-sms-counter]");
    for (var i = 0; i < fields.length; i++) {
      update(fields[i]);
    }
    if (scope.matches && scope.matches("textarea[data-sms-counter]")) {
      update(scope);
    }
  }

  document.addEventListener("input", function (event) {
    var target = event.target;
    if (target && target.matches && target.matches("textarea[data-sms-counter]")) {
      update(target);
    }
  });
  document.addEventListener("htmx:load", function (event) {
    updateAll(event.target);
  });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () {
      updateAll(document);
    });
  } else {
    updateAll(document);
  }
})();
