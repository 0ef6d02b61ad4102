// Small progressive enhancements; every form also works without JavaScript.
"use strict";

function toKatakana(text) {
  return text.replace(/[\u3041-\u3096]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0x60));
}

// <input data-filter-for="ID">: hide the options of <select id=ID> that do not contain the text
// (name or kana; hiragana is matched as katakana).
function setUpFilters() {
  document.querySelectorAll("input[data-filter-for]").forEach((input) => {
    const select = document.getElementById(input.dataset.filterFor);
    if (!select) return;
    const count = document.getElementById(input.dataset.filterFor + "-count");
    const apply = () => {
      const q = toKatakana(input.value.trim().normalize("NFKC"));
      let shown = 0;
      for (const option of select.options) {
        const hay = option.text + " " + (option.dataset.kana || "");
        const hit = !q || hay.includes(q);
        option.hidden = !hit;
        if (hit) shown += 1;
      }
      if (count) count.textContent = shown + " 件";
    };
    input.addEventListener("input", apply);
    apply();
  });
}

// <input list=ID data-suggest=URL>: fill <datalist id=ID> from URL?q=… as the user types.
function setUpSuggest() {
  document.querySelectorAll("input[data-suggest]").forEach((input) => {
    const list = document.getElementById(input.getAttribute("list"));
    let timer = null;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        const q = input.value.trim();
        if (!q || /^\d{6}$/.test(q)) return;
        const res = await fetch(input.dataset.suggest + "?q=" + encodeURIComponent(q), { credentials: "same-origin" });
        if (!res.ok) return;
        const items = await res.json();
        list.replaceChildren(...items.map((it) => {
          const o = document.createElement("option");
          o.value = it.value;
          o.label = it.label;
          o.textContent = it.label;
          return o;
        }));
      }, 200);
    });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setUpFilters();
  setUpSuggest();
});
