// Markup: HTML and SVG built as an element tree and written out with every text and attribute
// value escaped, so nothing read from a database (sweep names, plans, paths) can become markup.
// The only unescaped content is `trusted_text`, for the page's own constant CSS.
// A value type; not thread-safe while being built.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace cdmoe::report {

class Element {
 public:
  explicit Element(std::string tag);

  Element& attr(const std::string& name, const std::string& value);
  Element& attr(const std::string& name, const char* value) { return attr(name, std::string(value)); }
  Element& attr(const std::string& name, double value);  // as format_number()
  Element& text(const std::string& text);                // escaped
  Element& trusted_text(const char* constant);           // written as is: the page's own CSS only
  Element& add(Element child);
  Element& child(const std::string& tag);                // a new last child, to fill in place

  const std::string& tag() const { return tag_; }
  void write(std::string& out) const;
  std::string str() const;

 private:
  struct Content {
    enum class Kind { kText, kTrusted, kElement } kind;
    std::string text;
    std::unique_ptr<Element> element;
  };
  std::string tag_;
  std::vector<std::pair<std::string, std::string>> attributes_;
  std::vector<Content> content_;
};

// Escapes &, <, >, " and ' for text and attribute values.
void append_escaped(std::string& out, const std::string& text);
// Compact decimal for coordinates and data attributes: up to 6 significant digits ("0.25",
// "1.2e-05"); 17 digits give the double back exactly; "nan" / "inf" spelled out.
std::string format_number(double value, int significant = 6);

}  // namespace cdmoe::report
