//! The guides in `docs/guide/<lang>/`: checked and rendered to `target/guide/<lang>/*.html`
//! without the `mdbook` binary, so CI needs no downloaded tool.
//!
//! The layout is mdBook's (`book.toml`, `src/SUMMARY.md`, `src/*.md`), so `mdbook build
//! docs/guide/en` works too for anyone who has it. This builder reads only what the guide uses:
//! the book's `title` (and `language`) from `book.toml`, and the chapter list from the
//! `- [Title](file.md)` lines of `SUMMARY.md`. It refuses, naming file and line:
//!
//! - a chapter listed in `SUMMARY.md` whose file is missing;
//! - a `.md` file in `src/` that `SUMMARY.md` does not list (mdBook would silently leave it out);
//! - a relative link or image whose target does not exist;
//! - with `--strict`, a `<!-- RESULTS:name -->` marker still waiting for measured results;
//! - languages whose chapter file lists differ (a chapter translated into one language only).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};

/// The marker a chapter holds where measured results still have to be inserted.
pub const RESULTS_MARKER: &str = "<!-- RESULTS:";

/// One chapter of `SUMMARY.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chapter {
    /// The link text: the chapter's title in the navigation.
    pub title: String,
    /// The chapter file, relative to `src/` (forward slashes, as written in `SUMMARY.md`).
    pub file: String,
    /// Nesting level: 0 for top-level (and prefix) chapters.
    pub depth: usize,
    /// 1-based line in `SUMMARY.md`, for error messages.
    pub line: usize,
}

/// A relative link (or image) in a chapter, with its target stripped of `#fragment`/`?query`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The target path as written, without fragment or query.
    pub path: String,
    /// 1-based line of the link in the chapter.
    pub line: usize,
}

/// A parsed guide in one language.
#[derive(Debug)]
struct Book {
    /// The directory name under `docs/guide/` (`en`, `zh-CN`).
    lang: String,
    dir: PathBuf,
    title: String,
    /// `book.toml`'s `language`, else the directory name: the `lang` attribute of the pages.
    language: String,
    chapters: Vec<Chapter>,
}

/// Checks every guide under `guide_root` (`docs/guide`) and renders it to `out_root/<lang>/`.
/// Collects every problem before failing, so one run shows them all.
pub fn build(guide_root: &Path, out_root: &Path, strict: bool) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    let mut books = Vec::new();
    let mut langs: Vec<PathBuf> = std::fs::read_dir(guide_root)
        .with_context(|| format!("reading the guides directory {}", guide_root.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("listing {}", guide_root.display()))?;
    langs.retain(|p| p.join("book.toml").is_file());
    langs.sort();
    anyhow::ensure!(!langs.is_empty(), "no guide found: no {}/<lang>/book.toml", guide_root.display());
    for dir in langs {
        match read_book(&dir) {
            Ok(book) => {
                problems.extend(check_book(&book, strict)?);
                books.push(book);
            }
            Err(err) => problems.push(format!("{err:#}")),
        }
    }
    problems.extend(compare_languages(&books));
    if !problems.is_empty() {
        anyhow::bail!("the guide has {} problem(s):\n  {}", problems.len(), problems.join("\n  "));
    }
    for book in &books {
        let out = out_root.join(&book.lang);
        render_book(book, &out)?;
        eprintln!("xtask docs: guide `{}` ({} chapters) in {}", book.lang, book.chapters.len(), out.display());
    }
    if !strict {
        // Markers are allowed while results are pending, but they should not be forgotten.
        for book in &books {
            for chapter in &book.chapters {
                let path = book.dir.join("src").join(&chapter.file);
                let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
                for (line, marker) in results_markers(&text) {
                    eprintln!("xtask docs: note: {}:{line}: results pending: {marker}", path.display());
                }
            }
        }
    }
    Ok(())
}

fn read_book(dir: &Path) -> anyhow::Result<Book> {
    let lang = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let toml_path = dir.join("book.toml");
    let text = std::fs::read_to_string(&toml_path).with_context(|| format!("reading {}", toml_path.display()))?;
    let value: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}: not valid TOML", toml_path.display()))?;
    let book_table = value.get("book").and_then(|b| b.as_table());
    let title = book_table
        .and_then(|b| b.get("title"))
        .and_then(|t| t.as_str())
        .with_context(|| format!("{}: no `title` in its [book] table", toml_path.display()))?
        .to_string();
    let language = book_table.and_then(|b| b.get("language")).and_then(|l| l.as_str()).unwrap_or(&lang).to_string();
    // mdBook's `src` setting moves the chapters; this builder reads only the default.
    if let Some(src) = book_table.and_then(|b| b.get("src")).and_then(|s| s.as_str()) {
        anyhow::ensure!(src == "src", "{}: `src = \"{src}\"`: only \"src\" is supported", toml_path.display());
    }
    let summary_path = dir.join("src").join("SUMMARY.md");
    let summary =
        std::fs::read_to_string(&summary_path).with_context(|| format!("reading {}", summary_path.display()))?;
    let chapters = parse_summary(&summary).map_err(|errors| {
        anyhow::anyhow!(
            "{}",
            errors
                .iter()
                .map(|(line, msg)| format!("{}:{line}: {msg}", summary_path.display()))
                .collect::<Vec<_>>()
                .join("\n  ")
        )
    })?;
    Ok(Book { lang, dir: dir.to_path_buf(), title, language, chapters })
}

/// The chapters of an mdBook `SUMMARY.md`: list items `- [Title](file.md)` (or `*`), nested by
/// indentation, and unnumbered prefix/suffix chapters `[Title](file.md)`. Headings (`# Summary`,
/// part titles), separators (`---`) and blank lines are skipped. Errors are `(line, message)`:
/// a list item without a link, a draft chapter (empty link, which mdBook renders as a
/// placeholder: the guide has none), a link that is not a relative `.md` file, a file listed twice.
pub fn parse_summary(text: &str) -> Result<Vec<Chapter>, Vec<(usize, String)>> {
    let mut chapters: Vec<Chapter> = Vec::new();
    let mut errors = Vec::new();
    let mut in_comment = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        // HTML comments may span lines; they hold no chapters.
        if in_comment {
            in_comment = !trimmed.contains("-->");
            continue;
        }
        if trimmed.starts_with("<!--") {
            in_comment = !trimmed.contains("-->");
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.chars().all(|c| c == '-') {
            continue;
        }
        let indent = raw.len() - raw.trim_start().len();
        let (item, depth) = match trimmed.strip_prefix("- ").or_else(|| trimmed.strip_prefix("* ")) {
            // mdBook nests by indentation (2 or 4 spaces a level, as people write it).
            Some(rest) => (rest.trim(), indent.div_ceil(4)),
            None => (trimmed, 0),
        };
        let Some((title, target)) = parse_link(item) else {
            errors.push((line, format!("expected `- [Title](file.md)`, found `{trimmed}`")));
            continue;
        };
        if target.is_empty() {
            errors.push((line, format!("chapter `{title}` has no file (a draft chapter)")));
            continue;
        }
        if is_external(target) || target.starts_with('/') || !target.ends_with(".md") {
            errors.push((line, format!("chapter `{title}` must link a relative .md file, not `{target}`")));
            continue;
        }
        if let Some(first) = chapters.iter().find(|c| c.file == target) {
            errors.push((line, format!("`{target}` is listed twice (first on line {})", first.line)));
            continue;
        }
        chapters.push(Chapter { title: title.to_string(), file: target.to_string(), depth, line });
    }
    if chapters.is_empty() && errors.is_empty() {
        errors.push((1, "no chapters: expected lines like `- [Title](file.md)`".to_string()));
    }
    if errors.is_empty() {
        Ok(chapters)
    } else {
        Err(errors)
    }
}

/// `[title](target)` spanning the whole of `item` (titles may hold nested brackets).
fn parse_link(item: &str) -> Option<(&str, &str)> {
    let rest = item.strip_prefix('[')?;
    let mut depth = 1usize;
    let mut close = None;
    for (i, c) in rest.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let close = close?;
    let title = &rest[..close];
    let target = rest[close + 1..].strip_prefix('(')?.strip_suffix(')')?;
    Some((title.trim(), target.trim()))
}

fn is_external(target: &str) -> bool {
    target.contains("://") || target.starts_with("mailto:") || target.starts_with("data:")
}

/// The relative links and images of a chapter (not external URLs, not same-page `#anchors`,
/// not absolute paths), with their 1-based lines. Code blocks and spans hold no links, since the
/// Markdown parser decides what a link is, as the renderer does.
pub fn relative_links(markdown: &str) -> Vec<Link> {
    let mut links = Vec::new();
    for (event, range) in Parser::new_ext(markdown, markdown_options()).into_offset_iter() {
        let dest = match &event {
            Event::Start(Tag::Link { dest_url, .. }) | Event::Start(Tag::Image { dest_url, .. }) => dest_url,
            _ => continue,
        };
        let dest = dest.trim();
        if dest.is_empty() || dest.starts_with('#') || dest.starts_with('/') || is_external(dest) {
            continue;
        }
        let path = dest.split(['#', '?']).next().unwrap_or(dest);
        links.push(Link { path: path.to_string(), line: line_of(markdown, range.start) });
    }
    links
}

/// Relative links of `markdown` (the chapter file `chapter`) whose target does not exist, as
/// `(line, message)`.
pub fn broken_links(chapter: &Path, markdown: &str) -> Vec<(usize, String)> {
    let base = chapter.parent().unwrap_or(Path::new("."));
    relative_links(markdown)
        .into_iter()
        .filter(|link| !base.join(percent_decode(&link.path)).exists())
        .map(|link| (link.line, format!("link to `{}`, which does not exist", link.path)))
        .collect()
}

/// `%20` and friends in link targets name the file's real characters.
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        if let (b'%', Some(Ok(v))) = (bytes[i], hex.map(|h| u8::from_str_radix(h, 16))) {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `<!-- RESULTS:name -->` markers of a chapter: (1-based line, the marker's text).
pub fn results_markers(markdown: &str) -> Vec<(usize, String)> {
    markdown
        .lines()
        .enumerate()
        .filter_map(|(i, l)| l.find(RESULTS_MARKER).map(|at| (i + 1, l[at..].trim().to_string())))
        .collect()
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

/// Every problem of one book, as `file:line: message` lines.
fn check_book(book: &Book, strict: bool) -> anyhow::Result<Vec<String>> {
    let src = book.dir.join("src");
    let summary = src.join("SUMMARY.md");
    let mut problems = Vec::new();
    let listed: BTreeSet<PathBuf> = book.chapters.iter().map(|c| src.join(&c.file)).collect();
    for chapter in &book.chapters {
        let path = src.join(&chapter.file);
        if !path.is_file() {
            problems.push(format!(
                "{}:{}: chapter `{}` is missing: {} does not exist",
                summary.display(),
                chapter.line,
                chapter.title,
                path.display()
            ));
            continue;
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        for (line, msg) in broken_links(&path, &text) {
            problems.push(format!("{}:{line}: {msg}", path.display()));
        }
        if strict {
            for (line, marker) in results_markers(&text) {
                problems.push(format!("{}:{line}: results still pending (--strict): {marker}", path.display()));
            }
        }
    }
    for file in markdown_files(&src)? {
        if file != summary && !listed.contains(&file) {
            problems.push(format!("{}: not listed in {}", file.display(), summary.display()));
        }
    }
    Ok(problems)
}

/// Every `.md` file under `dir`, sorted.
fn markdown_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let path = entry.with_context(|| format!("listing {}", d.display()))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Problems when the books' chapter file lists differ: every language has the same chapters,
/// in the same order, so a reader can switch language chapter by chapter.
fn compare_languages(books: &[Book]) -> Vec<String> {
    let Some(first) = books.first() else { return Vec::new() };
    let files = |b: &Book| b.chapters.iter().map(|c| c.file.clone()).collect::<Vec<_>>();
    let reference = files(first);
    let mut problems = Vec::new();
    for book in &books[1..] {
        let other = files(book);
        if other == reference {
            continue;
        }
        let only = |a: &[String], b: &[String]| a.iter().filter(|f| !b.contains(f)).cloned().collect::<Vec<_>>();
        let (missing, extra) = (only(&reference, &other), only(&other, &reference));
        let detail = if missing.is_empty() && extra.is_empty() {
            format!("the same files in another order ({} vs {})", reference.join(", "), other.join(", "))
        } else {
            format!(
                "missing in `{}`: [{}]; only in `{}`: [{}]",
                book.lang,
                missing.join(", "),
                book.lang,
                extra.join(", ")
            )
        };
        problems.push(format!(
            "{}: the chapter files differ from `{}`'s ({}): {detail}",
            book.dir.join("src/SUMMARY.md").display(),
            first.lang,
            first.dir.join("src/SUMMARY.md").display()
        ));
    }
    problems
}

fn markdown_options() -> Options {
    // What mdBook enables by default, so a page renders the same with either tool.
    Options::ENABLE_TABLES | Options::ENABLE_FOOTNOTES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS
}

/// `chapter.md#part` -> `chapter.html#part` for relative links, as mdBook rewrites them.
fn html_target(dest: &str) -> Option<String> {
    if is_external(dest) || dest.starts_with('#') {
        return None;
    }
    let (path, rest) = match dest.find(['#', '?']) {
        Some(at) => dest.split_at(at),
        None => (dest, ""),
    };
    path.strip_suffix(".md").map(|stem| format!("{stem}.html{rest}"))
}

fn render_markdown(markdown: &str) -> String {
    let events = Parser::new_ext(markdown, markdown_options()).map(|event| match event {
        Event::Start(Tag::Link { link_type, dest_url, title, id }) => {
            let dest_url = html_target(&dest_url).map(CowStr::from).unwrap_or(dest_url);
            Event::Start(Tag::Link { link_type, dest_url, title, id })
        }
        other => other,
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn html_name(file: &str) -> String {
    html_target(file).unwrap_or_else(|| file.to_string())
}

const STYLE: &str = "body{margin:0;font-family:system-ui,sans-serif;line-height:1.6;color:#222}\
nav{position:fixed;top:0;left:0;bottom:0;width:17rem;overflow:auto;background:#f4f4f4;padding:1rem;box-sizing:border-box}\
nav ol{padding-left:1.2rem}nav a{color:#333;text-decoration:none}nav a.active{font-weight:bold;color:#b33}\
main{margin-left:18rem;max-width:52rem;padding:1rem 2rem}pre{background:#f6f8fa;padding:.8rem;overflow:auto}\
code{font-family:ui-monospace,monospace;font-size:.92em}table{border-collapse:collapse}\
td,th{border:1px solid #ccc;padding:.3rem .6rem;vertical-align:top}img{max-width:100%}\
.pager{display:flex;justify-content:space-between;margin:2rem 0}";

/// One page: the shared navigation (every chapter, this one highlighted), the chapter, and
/// previous/next links.
fn render_page(book: &Book, index: usize, body: &str) -> String {
    let chapter = &book.chapters[index];
    // Links are relative, so the pages work from any directory (file:// included).
    let up = "../".repeat(chapter.file.matches('/').count());
    let href = |c: &Chapter| format!("{up}{}", html_name(&c.file));
    let mut nav = String::from("<ol>");
    for c in &book.chapters {
        let class = if c.file == chapter.file { " class=\"active\"" } else { "" };
        let _ = write!(
            nav,
            "<li style=\"margin-left:{}rem\"><a href=\"{}\"{class}>{}</a></li>",
            c.depth,
            escape(&href(c)),
            escape(&c.title)
        );
    }
    nav.push_str("</ol>");
    let mut pager = String::from("<div class=\"pager\">");
    match index.checked_sub(1).map(|i| &book.chapters[i]) {
        Some(prev) => {
            let _ = write!(pager, "<a href=\"{}\">← {}</a>", escape(&href(prev)), escape(&prev.title));
        }
        None => pager.push_str("<span></span>"),
    }
    if let Some(next) = book.chapters.get(index + 1) {
        let _ = write!(pager, "<a href=\"{}\">{} →</a>", escape(&href(next)), escape(&next.title));
    }
    pager.push_str("</div>");
    format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} - {book}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <nav><a href=\"{up}index.html\"><strong>{book}</strong></a>\n{nav}</nav>\n\
         <main>\n{body}\n{pager}\n</main>\n</body>\n</html>\n",
        lang = escape(&book.language),
        title = escape(&chapter.title),
        book = escape(&book.title),
    )
}

/// Writes `out/<chapter>.html` for every chapter, `out/index.html` (the first chapter, as
/// mdBook does) and copies the other files of `src/` (images) beside them.
fn render_book(book: &Book, out: &Path) -> anyhow::Result<()> {
    let src = book.dir.join("src");
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for (i, chapter) in book.chapters.iter().enumerate() {
        let path = src.join(&chapter.file);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let page = render_page(book, i, &render_markdown(&text));
        let target = out.join(html_name(&chapter.file));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&target, &page).with_context(|| format!("writing {}", target.display()))?;
        if i == 0 {
            let index = out.join("index.html");
            std::fs::write(&index, &page).with_context(|| format!("writing {}", index.display()))?;
        }
    }
    copy_assets(&src, &src, out)
}

/// Copies every non-Markdown file under `dir` (images the chapters show) to the same place in
/// `out`.
fn copy_assets(src: &Path, dir: &Path, out: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry.with_context(|| format!("listing {}", dir.display()))?.path();
        if path.is_dir() {
            copy_assets(src, &path, out)?;
        } else if path.extension().is_none_or(|e| e != "md") {
            let rel =
                path.strip_prefix(src).with_context(|| format!("{} is outside {}", path.display(), src.display()))?;
            let target = out.join(rel);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
            }
            std::fs::copy(&path, &target)
                .with_context(|| format!("copying {} to {}", path.display(), target.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lists_chapters_in_order_with_depth_and_line() {
        let text = "# Summary\n\n[Introduction](intro.md)\n\n- [The CNN](cnn.md)\n  - [Layers](cnn/layers.md)\n---\n# Part\n* [Optimizers `sgd`](optim.md)\n";
        let chapters = parse_summary(text).expect("valid summary");
        let got: Vec<(&str, &str, usize, usize)> =
            chapters.iter().map(|c| (c.title.as_str(), c.file.as_str(), c.depth, c.line)).collect();
        assert_eq!(
            got,
            vec![
                ("Introduction", "intro.md", 0, 3),
                ("The CNN", "cnn.md", 0, 5),
                ("Layers", "cnn/layers.md", 1, 6),
                ("Optimizers `sgd`", "optim.md", 0, 9),
            ]
        );
    }

    #[test]
    fn summary_titles_may_hold_brackets() {
        let chapters = parse_summary("- [Adam [Kingma 2015]](adam.md)\n").expect("valid summary");
        assert_eq!(chapters[0].title, "Adam [Kingma 2015]");
        assert_eq!(chapters[0].file, "adam.md");
    }

    #[test]
    fn summary_errors_name_their_lines() {
        let text = "# Summary\n- [A](a.md)\n- Not a link\n- [Draft]()\n- [Web](https://example.com/x.md)\n- [A again](a.md)\n- [Text](notes.txt)\n";
        let errors = parse_summary(text).expect_err("five bad lines");
        let lines: Vec<usize> = errors.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![3, 4, 5, 6, 7]);
        assert!(errors[0].1.contains("Not a link"), "{errors:?}");
        assert!(errors[1].1.contains("draft"), "{errors:?}");
        assert!(errors[3].1.contains("listed twice (first on line 2)"), "{errors:?}");
    }

    #[test]
    fn summary_without_chapters_is_an_error() {
        assert!(parse_summary("# Summary\n\n<!-- nothing\n- [yet](x.md) -->\n").is_err());
    }

    #[test]
    fn links_skip_external_anchors_and_code() {
        let md = "# T\n\nSee [next](next.md#part) and [web](https://x.org/a.md),\n[top](#t), `[code](nope.md)`.\n\n```\n[block](nope2.md)\n```\n![plot](img/p.png?raw=1)\n";
        let links = relative_links(md);
        assert_eq!(links, vec![Link { path: "next.md".into(), line: 3 }, Link { path: "img/p.png".into(), line: 9 }]);
    }

    #[test]
    fn broken_links_are_reported_with_their_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("there.md"), "x").expect("write");
        std::fs::write(dir.path().join("my plot.png"), "x").expect("write");
        let chapter = dir.path().join("ch.md");
        let md = "[ok](there.md)\n\n[gone](missing.md)\n![ok](my%20plot.png)\n[ref][r]\n\n[r]: also-missing.md\n";
        let broken = broken_links(&chapter, md);
        assert_eq!(broken.len(), 2, "{broken:?}");
        assert_eq!(broken[0].0, 3);
        assert!(broken[0].1.contains("missing.md"));
        assert_eq!(broken[1].0, 5);
        assert!(broken[1].1.contains("also-missing.md"));
    }

    #[test]
    fn markers_are_found_by_line() {
        let md = "a\n<!-- RESULTS:optimizers -->\nb\n";
        assert_eq!(results_markers(md), vec![(2, "<!-- RESULTS:optimizers -->".to_string())]);
    }

    #[test]
    fn md_links_render_as_html_pages() {
        let html = render_markdown("[a](b.md#x) [c](https://e.org/d.md) [e](f.png)");
        assert!(html.contains("href=\"b.html#x\""), "{html}");
        assert!(html.contains("href=\"https://e.org/d.md\""), "{html}");
        assert!(html.contains("href=\"f.png\""), "{html}");
    }

    /// A two-language guide in a temporary directory; `files` are (path under docs/guide, text).
    fn guide(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        dir
    }

    fn good_guide() -> Vec<(&'static str, &'static str)> {
        vec![
            ("en/book.toml", "[book]\ntitle = \"Guide\"\nlanguage = \"en\"\n"),
            ("en/src/SUMMARY.md", "# Summary\n- [One](one.md)\n- [Two](two.md)\n"),
            ("en/src/one.md", "# One\n[next](two.md)\n![pic](pic.png)\n"),
            ("en/src/pic.png", "png"),
            ("en/src/two.md", "# Two\n<!-- RESULTS:two -->\n"),
            ("zh-CN/book.toml", "[book]\ntitle = \"指南\"\nlanguage = \"zh-CN\"\n"),
            ("zh-CN/src/SUMMARY.md", "# 目录\n- [一](one.md)\n- [二](two.md)\n"),
            ("zh-CN/src/one.md", "# 一\n"),
            ("zh-CN/src/two.md", "# 二\n"),
        ]
    }

    #[test]
    fn a_good_guide_renders_and_markers_fail_only_when_strict() {
        let dir = guide(&good_guide());
        let out = dir.path().join("out");
        build(dir.path(), &out, false).expect("builds");
        let page = std::fs::read_to_string(out.join("en/one.html")).expect("page");
        assert!(page.contains("href=\"two.html\""), "{page}");
        assert!(page.contains("<html lang=\"en\">"));
        assert!(out.join("en/index.html").is_file());
        assert!(out.join("en/pic.png").is_file());
        assert!(out.join("zh-CN/two.html").is_file());
        let err = format!("{:#}", build(dir.path(), &out, true).expect_err("a marker is pending"));
        assert!(err.contains("two.md:2: results still pending"), "{err}");
    }

    #[test]
    fn missing_unlisted_and_mismatched_chapters_fail() {
        let mut files = good_guide();
        files.retain(|(p, _)| *p != "en/src/two.md");
        files.push(("en/src/orphan.md", "# not listed\n"));
        files.push(("zh-CN/src/SUMMARY.md", "# 目录\n- [一](one.md)\n- [三](three.md)\n"));
        files.push(("zh-CN/src/three.md", "# 三\n"));
        files.retain(|(p, _)| *p != "zh-CN/src/two.md");
        let dir = guide(&files);
        let err = format!("{:#}", build(dir.path(), &dir.path().join("out"), false).expect_err("broken guide"));
        assert!(err.contains("SUMMARY.md:3: chapter `Two` is missing"), "{err}");
        assert!(err.contains("orphan.md: not listed"), "{err}");
        assert!(err.contains("missing in `zh-CN`: [two.md]; only in `zh-CN`: [three.md]"), "{err}");
    }

    #[test]
    fn a_broken_link_fails_the_build() {
        let mut files = good_guide();
        files.push(("zh-CN/src/one.md", "# 一\n\n见 [二](two.md)，[图](missing.png)\n"));
        let dir = guide(&files);
        let err = format!("{:#}", build(dir.path(), &dir.path().join("out"), false).expect_err("broken link"));
        assert!(err.contains("one.md:3: link to `missing.png`, which does not exist"), "{err}");
    }
}
