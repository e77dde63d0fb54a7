#pragma once
// The annotation page (web/index.html, app.js, style.css, favicon.svg) compiled into the program,
// so that sam_annotate serves it with no files beside it and no build step. web_assets.cpp is
// generated from web/ by scripts/embed_web.sh; edit web/ and rerun the script.
#include <string>
#include <string_view>
#include <vector>

namespace sam::annotate {

struct WebAsset {
  const char* path;       ///< file name under web/ ("index.html")
  const char* mime;       ///< Content-Type to serve it with
  std::string_view body;  ///< the file's bytes
};

/// Every embedded file.
const std::vector<WebAsset>& web_assets();
/// The asset with this file name, or nullptr.
const WebAsset* find_web_asset(const std::string& path);

}  // namespace sam::annotate
