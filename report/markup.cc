#include "report/markup.h"

#include <cmath>
#include <cstdio>

#include "core/names.h"

namespace cdmoe::report {
namespace {

// Elements HTML writes without a closing tag.
bool is_void(const std::string& tag) {
  return tag == "meta" || tag == "br" || tag == "hr" || tag == "img" || tag == "link" || tag == "input";
}

}  // namespace

Element::Element(std::string tag) : tag_(std::move(tag)) {}

Element& Element::attr(const std::string& name, const std::string& value) {
  attributes_.emplace_back(name, value);
  return *this;
}

Element& Element::attr(const std::string& name, double value) { return attr(name, format_number(value)); }

Element& Element::text(const std::string& text) {
  content_.push_back({Content::Kind::kText, text, nullptr});
  return *this;
}

Element& Element::trusted_text(const char* constant) {
  content_.push_back({Content::Kind::kTrusted, constant, nullptr});
  return *this;
}

Element& Element::add(Element child) {
  content_.push_back({Content::Kind::kElement, "", std::make_unique<Element>(std::move(child))});
  return *this;
}

Element& Element::child(const std::string& tag) {
  add(Element(tag));
  return *content_.back().element;
}

void Element::write(std::string& out) const {
  out += '<';
  out += tag_;
  for (const auto& [name, value] : attributes_) {
    out += ' ';
    out += name;
    out += "=\"";
    append_escaped(out, value);
    out += '"';
  }
  out += '>';
  if (is_void(tag_)) return;
  for (const Content& c : content_) {
    if (c.kind == Content::Kind::kElement) c.element->write(out);
    else if (c.kind == Content::Kind::kTrusted) out += c.text;
    else append_escaped(out, c.text);
  }
  out += "</";
  out += tag_;
  out += '>';
}

std::string Element::str() const {
  std::string out;
  write(out);
  return out;
}

void append_escaped(std::string& out, const std::string& text) {
  // XML 1.0 cannot carry C0 controls but tab, newline and carriage return, even as character
  // references, nor invalid UTF-8: such text (from a database written before names were checked)
  // is shown with U+FFFD in their place rather than making the page or an SVG ill-formed.
  const bool valid = is_valid_utf8(text);
  for (char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t' && c != '\n' && c != '\r') || (!valid && u >= 0x80)) {
      out += "\xEF\xBF\xBD";
      continue;
    }
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
}

std::string format_number(double value, int significant) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.*g", significant, value == 0 ? 0.0 : value);
  return buffer;
}

}  // namespace cdmoe::report
