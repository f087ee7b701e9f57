// The segment builder: nested AND/OR/NOT groups of conditions, kept as JSON in the
// form's hidden "rules" field (the only thing the server reads). Fields, operators
// and choices come from segments.rules.builder_schema() through the page's
// "segment-schema" JSON; the builder's own words from "segment-builder-texts".
// After every change the tree is written to the field and a "rules-change" event
// goes up from the builder: htmx (hx-trigger on the builder) asks for the live count.
// No framework and no inline script: the page will get a strict CSP.
(function () {
  "use strict";

  var uid = 0;

  function nextId(prefix) {
    uid += 1;
    return "rb-" + prefix + "-" + uid;
  }

  function readJson(id) {
    var node = document.getElementById(id);
    if (!node) {
      return null;
    }
    try {
      return JSON.parse(node.textContent);
    } catch (error) {
      return null;
    }
  }

  // el("select", {id: "x", "aria-label": "…"}, [children]); text sets textContent.
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    var key;
    var value;
    attrs = attrs || {};
    for (key in attrs) {
      if (!Object.prototype.hasOwnProperty.call(attrs, key)) {
        continue;
      }
      value = attrs[key];
      if (value === null || value === undefined || value === false) {
        continue;
      }
      if (key === "text") {
        node.textContent = value;
      } else if (key === "className") {
        node.className = value;
      } else if (value === true) {
        node.setAttribute(key, "");
      } else {
        node.setAttribute(key, String(value));
      }
    }
    (children || []).forEach(function (child) {
      if (child) {
        node.appendChild(child);
      }
    });
    return node;
  }

  function isGroup(node) {
    return node && typeof node === "object" && !("field" in node) && "rules" in node;
  }

  function newGroup() {
    return { op: "and", rules: [] };
  }

  function newCondition() {
    return { field: "", operator: "", value: null };
  }

  function numberOrNull(input) {
    if (input.value === "") {
      return null;
    }
    var number = Number(input.value);
    return isFinite(number) ? number : null;
  }

  function integerOrNull(input) {
    if (input.value === "") {
      return null;
    }
    var number = Number(input.value);
    return isFinite(number) && Math.floor(number) === number ? number : null;
  }

  function Builder(root, input, schema, texts) {
    this.root = root;
    this.input = input;
    this.texts = texts || {};
    this.fields = {};
    this.schema = schema || { groups: [] };
    var self = this;
    this.schema.groups.forEach(function (group) {
      group.fields.forEach(function (field) {
        self.fields[field.code] = field;
      });
    });
    var tree = null;
    try {
      tree = JSON.parse(input.value || "{}");
    } catch (error) {
      tree = null;
    }
    if (!isGroup(tree)) {
      tree = newGroup();
    }
    this.tree = tree;
  }

  Builder.prototype.t = function (key) {
    return this.texts[key] || key;
  };

  Builder.prototype.operatorOf = function (condition) {
    var field = this.fields[condition.field];
    if (!field) {
      return null;
    }
    for (var i = 0; i < field.operators.length; i += 1) {
      if (field.operators[i].code === condition.operator) {
        return field.operators[i];
      }
    }
    return null;
  };

  // The tree as the server reads it: conditions without a field are left out (a
  // row just added), keys the operator does not take are dropped.
  Builder.prototype.clean = function (node) {
    var self = this;
    if (isGroup(node)) {
      var rules = [];
      node.rules.forEach(function (child) {
        var cleaned = self.clean(child);
        if (cleaned) {
          rules.push(cleaned);
        }
      });
      return { op: node.op, rules: rules };
    }
    if (!node.field) {
      return null;
    }
    var cleaned = { field: node.field, operator: node.operator };
    var operator = this.operatorOf(node);
    if (!operator || operator.needs_value) {
      cleaned.value = node.value === undefined ? null : node.value;
    }
    if (operator && operator.needs_days) {
      cleaned.days = node.days === undefined ? null : node.days;
    }
    return cleaned;
  };

  Builder.prototype.sync = function (notify) {
    this.input.value = JSON.stringify(this.clean(this.tree));
    if (notify) {
      this.root.dispatchEvent(new CustomEvent("rules-change", { bubbles: true }));
    }
  };

  // Structure changed: draw again, put the focus back where it was (or on
  // ``focusKey``), write the field and ask for a count.
  Builder.prototype.redraw = function (focusKey) {
    var active = document.activeElement;
    var key = focusKey || (active && active.getAttribute && active.getAttribute("data-focus"));
    this.render();
    if (key) {
      var target = this.root.querySelector("[data-focus='" + key + "']");
      if (target) {
        target.focus();
      }
    }
    this.sync(true);
  };

  Builder.prototype.render = function () {
    this.root.textContent = "";
    this.root.appendChild(this.renderGroup(this.tree, null, "r"));
  };

  Builder.prototype.renderGroup = function (group, parent, path) {
    var self = this;
    var opId = nextId("op");
    var select = el("select", { id: opId, "data-focus": path + ".op" });
    ["and", "or", "not"].forEach(function (op) {
      select.appendChild(
        el("option", { value: op, selected: group.op === op, text: self.t(op) })
      );
    });
    select.addEventListener("change", function () {
      group.op = select.value;
      self.sync(true);
    });
    var head = el("div", { className: "rb-group__head" }, [
      el("label", { for: opId, text: self.t(parent ? "matchGroup" : "match") }),
      select,
    ]);
    if (parent) {
      var remove = el("button", {
        type: "button",
        className: "button button--quiet rb-remove",
        "data-focus": path + ".remove",
        text: self.t("removeGroup"),
      });
      remove.addEventListener("click", function () {
        parent.rules.splice(parent.rules.indexOf(group), 1);
        self.redraw(path.replace(/\.\d+$/, "") + ".addCondition");
      });
      head.appendChild(remove);
    }
    var list = el("ol", { className: "rb-group__rules" });
    group.rules.forEach(function (child, index) {
      var childPath = path + "." + index;
      list.appendChild(
        el("li", { className: "rb-group__item" }, [
          isGroup(child)
            ? self.renderGroup(child, group, childPath)
            : self.renderCondition(child, group, childPath),
        ])
      );
    });
    var empty = group.rules.length
      ? null
      : el("p", { className: "rb-group__empty muted", text: self.t(parent ? "emptyGroup" : "empty") });
    var addCondition = el("button", {
      type: "button",
      className: "button rb-add",
      "data-focus": path + ".addCondition",
      "data-add-condition": true,
      text: "+ " + self.t("addCondition"),
    });
    addCondition.addEventListener("click", function () {
      group.rules.push(newCondition());
      self.redraw(path + "." + (group.rules.length - 1) + ".field");
    });
    var addGroup = el("button", {
      type: "button",
      className: "button button--quiet rb-add",
      "data-focus": path + ".addGroup",
      "data-add-group": true,
      text: "+ " + self.t("addGroup"),
    });
    addGroup.addEventListener("click", function () {
      var child = newGroup();
      child.op = group.op === "and" ? "or" : "and";
      child.rules.push(newCondition());
      group.rules.push(child);
      self.redraw(path + "." + (group.rules.length - 1) + ".0.field");
    });
    return el(
      "fieldset",
      { className: "rb-group rb-group--" + group.op + (parent ? " rb-group--nested" : "") },
      [
        el("legend", { className: "visually-hidden", text: self.t("group") }),
        head,
        list,
        empty,
        el("div", { className: "rb-group__actions" }, [addCondition, addGroup]),
      ]
    );
  };

  Builder.prototype.renderCondition = function (condition, parent, path) {
    var self = this;
    var field = this.fields[condition.field];
    var row = el("div", { className: "rb-condition", role: "group", "aria-label": self.t("condition") });

    // The field, grouped as the schema groups them.
    var fieldId = nextId("field");
    var fieldSelect = el("select", { id: fieldId, "data-focus": path + ".field", "data-field": true });
    fieldSelect.appendChild(el("option", { value: "", text: self.t("chooseField") }));
    if (condition.field && !field) {
      fieldSelect.appendChild(
        el("option", { value: condition.field, selected: true, text: self.t("unknownField") + ": " + condition.field })
      );
    }
    this.schema.groups.forEach(function (group) {
      var optgroup = el("optgroup", { label: group.label });
      group.fields.forEach(function (option) {
        optgroup.appendChild(
          el("option", { value: option.code, selected: option.code === condition.field, text: option.label })
        );
      });
      fieldSelect.appendChild(optgroup);
    });
    fieldSelect.addEventListener("change", function () {
      var chosen = self.fields[fieldSelect.value];
      condition.field = fieldSelect.value;
      condition.operator = chosen && chosen.operators.length ? chosen.operators[0].code : "";
      condition.value = null;
      delete condition.days;
      self.redraw(path + ".operator");
    });
    row.appendChild(
      el("div", { className: "field rb-field" }, [
        el("label", { for: fieldId, className: "visually-hidden", text: self.t("field") }),
        fieldSelect,
      ])
    );

    if (field) {
      // The operators of this field only.
      var operatorId = nextId("operator");
      var operatorSelect = el("select", {
        id: operatorId,
        "data-focus": path + ".operator",
        "data-operator": true,
      });
      field.operators.forEach(function (operator) {
        operatorSelect.appendChild(
          el("option", {
            value: operator.code,
            selected: operator.code === condition.operator,
            text: operator.label,
          })
        );
      });
      if (!self.operatorOf(condition) && field.operators.length) {
        condition.operator = field.operators[0].code;
      }
      operatorSelect.addEventListener("change", function () {
        var before = self.operatorOf(condition);
        condition.operator = operatorSelect.value;
        var after = self.operatorOf(condition);
        if (!before || !after || before.value_kind !== after.value_kind) {
          condition.value = null;
        }
        if (!after || !after.needs_days) {
          delete condition.days;
        }
        self.redraw(path + ".value");
      });
      row.appendChild(
        el("div", { className: "field rb-operator" }, [
          el("label", { for: operatorId, className: "visually-hidden", text: self.t("operator") }),
          operatorSelect,
        ])
      );
      var operator = self.operatorOf(condition);
      if (operator && operator.needs_value) {
        row.appendChild(self.renderValue(condition, field, operator, path));
      }
      if (operator && operator.needs_days) {
        row.appendChild(self.renderDays(condition, path));
      }
    }

    var remove = el("button", {
      type: "button",
      className: "button button--quiet rb-remove",
      "data-focus": path + ".remove",
      "aria-label": self.t("removeCondition"),
      title: self.t("removeCondition"),
      text: "×",
    });
    remove.addEventListener("click", function () {
      parent.rules.splice(parent.rules.indexOf(condition), 1);
      self.redraw(path.replace(/\.\d+$/, "") + ".addCondition");
    });
    row.appendChild(remove);
    return row;
  };

  // One input (or two, or a list) for the value, by the operator's value kind.
  Builder.prototype.renderValue = function (condition, field, operator, path) {
    var self = this;
    var kind = operator.value_kind;
    var box = el("div", { className: "field rb-value rb-value--" + kind });
    var label = self.t("value") + ": " + field.label;
    var value = condition.value;

    function input(type, current, suffix, text, extra) {
      var id = nextId("value");
      var attrs = {
        id: id,
        type: type,
        "data-focus": path + ".value" + (suffix || ""),
        "data-value": true,
        value: current === null || current === undefined ? "" : current,
      };
      var key;
      for (key in extra || {}) {
        attrs[key] = extra[key];
      }
      var node = el("input", attrs);
      box.appendChild(el("label", { for: id, className: "visually-hidden", text: text }));
      box.appendChild(node);
      return node;
    }

    function listen(node, read) {
      node.addEventListener("input", function () {
        condition.value = read();
        self.sync(true);
      });
    }

    if (kind === "text") {
      var text = input("text", typeof value === "string" ? value : "", "", label, { autocomplete: "off" });
      listen(text, function () {
        return text.value;
      });
    } else if (kind === "number" || kind === "days") {
      var numberExtra = kind === "days"
        ? { min: 1, max: 3650, step: 1, inputmode: "numeric" }
        : { step: "any", inputmode: "decimal" };
      var number = input("number", typeof value === "number" ? value : "", "", label, numberExtra);
      listen(number, function () {
        return kind === "days" ? integerOrNull(number) : numberOrNull(number);
      });
      if (kind === "days") {
        box.appendChild(el("span", { className: "rb-unit", text: self.t("daysUnit") }));
      }
    } else if (kind === "pair" || kind === "date_pair") {
      var pair = Array.isArray(value) ? value : [null, null];
      var type = kind === "pair" ? "number" : "date";
      var extra = kind === "pair" ? { step: "any", inputmode: "decimal" } : {};
      var low = input(type, pair[0], ".0", label + " — " + self.t("from"), extra);
      box.appendChild(el("span", { className: "rb-unit", "aria-hidden": "true", text: self.t("and_between") }));
      var high = input(type, pair[1], ".1", label + " — " + self.t("to"), extra);
      var readPair = function () {
        if (kind === "pair") {
          return [numberOrNull(low), numberOrNull(high)];
        }
        return [low.value || null, high.value || null];
      };
      listen(low, readPair);
      listen(high, readPair);
    } else if (kind === "date") {
      var date = input("date", typeof value === "string" ? value : "", "", label, {});
      listen(date, function () {
        return date.value || null;
      });
    } else if (kind === "choices" || kind === "choice") {
      var choices = field.choices || [];
      var multiple = kind === "choices";
      var chosen = multiple ? (Array.isArray(value) ? value : []) : [value];
      var id = nextId("value");
      var select = el("select", {
        id: id,
        multiple: multiple,
        size: multiple ? Math.min(6, Math.max(3, choices.length)) : null,
        "data-focus": path + ".value",
        "data-value": true,
      });
      if (!multiple) {
        select.appendChild(el("option", { value: "", text: "—" }));
      }
      choices.forEach(function (choice, index) {
        var selected = chosen.some(function (item) {
          return item !== null && item !== undefined && String(item) === String(choice.value);
        });
        select.appendChild(el("option", { value: String(index), selected: selected, text: choice.label }));
      });
      box.appendChild(el("label", { for: id, className: "visually-hidden", text: label }));
      box.appendChild(select);
      if (multiple) {
        var helpId = nextId("help");
        select.setAttribute("aria-describedby", helpId);
        box.appendChild(el("span", { id: helpId, className: "field__help", text: self.t("choicesHelp") }));
      }
      select.addEventListener("change", function () {
        var picked = [];
        for (var i = 0; i < select.options.length; i += 1) {
          var option = select.options[i];
          if (option.selected && option.value !== "") {
            picked.push(choices[Number(option.value)].value);
          }
        }
        condition.value = multiple ? picked : picked.length ? picked[0] : null;
        self.sync(true);
      });
    }
    return box;
  };

  Builder.prototype.renderDays = function (condition, path) {
    var self = this;
    var id = nextId("days");
    var days = el("input", {
      id: id,
      type: "number",
      min: 1,
      max: 3650,
      step: 1,
      inputmode: "numeric",
      "data-focus": path + ".days",
      "data-days": true,
      value: typeof condition.days === "number" ? condition.days : "",
    });
    days.addEventListener("input", function () {
      condition.days = integerOrNull(days);
      self.sync(true);
    });
    return el("div", { className: "field rb-days" }, [
      el("label", { for: id, text: self.t("days") }),
      days,
    ]);
  };

  // The rules and the schedule only matter for a dynamic segment.
  function syncKind(form) {
    var checked = form.querySelector("input[name='kind']:checked");
    if (!checked) {
      return;
    }
    var dynamic = checked.value === "dynamic";
    var parts = form.querySelectorAll("[data-dynamic-only]");
    for (var i = 0; i < parts.length; i += 1) {
      parts[i].hidden = !dynamic;
    }
  }

  function setUp() {
    var root = document.querySelector("[data-rule-builder]");
    var form = root ? root.closest("form") : document.querySelector("form[data-segment-form]");
    if (form) {
      syncKind(form);
      form.addEventListener("change", function (event) {
        if (event.target && event.target.name === "kind") {
          syncKind(form);
        }
      });
    }
    if (!root) {
      return;
    }
    var input = document.getElementById(root.getAttribute("data-rules-input"));
    if (!input) {
      return;
    }
    var builder = new Builder(
      root,
      input,
      readJson("segment-schema"),
      readJson("segment-builder-texts")
    );
    builder.render();
    builder.sync(false);
    root.hidden = false;
    // Enter in a builder field counts now instead of saving the form.
    root.addEventListener("keydown", function (event) {
      var tag = event.target.tagName;
      if (event.key === "Enter" && (tag === "INPUT" || tag === "SELECT")) {
        event.preventDefault();
        builder.sync(true);
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
