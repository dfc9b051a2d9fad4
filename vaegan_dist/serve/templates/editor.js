"use strict";
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var info = null, photo = null, editTimer = null, editSeq = 0;

  function showError(message) { $("error").textContent = message || ""; }

  function request(url, options) {
    return fetch(url, options).then(function (response) {
      if (response.ok) { return response; }
      return response.json().then(function (body) { throw new Error(body.error || response.statusText); },
                                  function () { throw new Error(response.status + " " + response.statusText); });
    });
  }

  function showImage(img, response) {
    return response.blob().then(function (blob) {
      if (img.dataset.url) { URL.revokeObjectURL(img.dataset.url); }
      img.dataset.url = URL.createObjectURL(blob);
      img.src = img.dataset.url;
      img.dataset.version = String(Number(img.dataset.version || "0") + 1);
    });
  }

  function form(fields) {
    var data = new FormData();
    Object.keys(fields).forEach(function (key) { data.append(key, fields[key]); });
    return { method: "POST", body: data };
  }

  function scales() {
    var chosen = {};
    document.querySelectorAll("#sliders input[type=range]").forEach(function (slider) {
      var value = Number(slider.value);
      if (value !== 0) { chosen[slider.dataset.attribute] = value; }
      slider.nextElementSibling.textContent = value.toFixed(1);
    });
    return chosen;
  }

  function edit() {
    var chosen = scales(), seq = ++editSeq;
    if (!photo) { return; }
    if (Object.keys(chosen).length === 0) { return reconstruct(); }
    request("/edit", form({ image: photo, scales: JSON.stringify(chosen) })).then(function (response) {
      if (seq === editSeq) { return showImage($("edited"), response).then(function () { showError(""); }); }
    }).catch(function (err) { showError(err.message); });
  }

  function reconstruct() {
    var seq = ++editSeq;  // a newer photo or edit makes this answer stale
    if (!photo) { return; }
    request("/reconstruct", form({ image: photo })).then(function (response) {
      if (seq !== editSeq) { return; }
      return showImage($("reconstruction"), response).then(function () {
        $("edited").src = $("reconstruction").src;
        showError("");
      });
    }).catch(function (err) { showError(err.message); });
  }

  function buildSliders() {
    var box = $("sliders");
    box.textContent = "";
    if (!info.can_edit) {
      box.textContent = "This " + info.model_kind + " model has no attribute vectors: photos cannot be edited.";
      return;
    }
    info.attributes.forEach(function (name) {
      var label = document.createElement("label"), title = document.createElement("span");
      var slider = document.createElement("input"), value = document.createElement("output");
      title.textContent = name;
      slider.type = "range"; slider.min = "-3"; slider.max = "3"; slider.step = "0.5"; slider.value = "0";
      slider.dataset.attribute = name;
      slider.addEventListener("input", function () {
        clearTimeout(editTimer);
        editTimer = setTimeout(edit, 150);
      });
      value.textContent = "0.0";
      label.appendChild(title); label.appendChild(slider); label.appendChild(value);
      box.appendChild(label);
    });
  }

  function sample() {
    var seed = Math.floor(Math.random() * 1000000);
    request("/sample?n=16&seed=" + seed).then(function (response) { return showImage($("samples"), response); })
      .then(function () { showError(""); }).catch(function (err) { showError(err.message); });
  }

  function morph() {
    var a = $("morph-a").files[0], b = $("morph-b").files[0];
    if (!a || !b) { return showError("choose two photos to morph between"); }
    request("/interpolate", form({ image_a: a, image_b: b, steps: $("steps").value }))
      .then(function (response) { return showImage($("strip"), response); })
      .then(function () { showError(""); }).catch(function (err) { showError(err.message); });
  }

  $("photo").addEventListener("change", function () {
    photo = this.files[0] || null;
    if (!photo) { return; }
    var original = $("original");
    if (original.dataset.url) { URL.revokeObjectURL(original.dataset.url); }
    original.dataset.url = URL.createObjectURL(photo);
    original.src = original.dataset.url;
    document.querySelectorAll("#sliders input[type=range]").forEach(function (s) { s.value = "0"; });
    scales();
    reconstruct();
  });
  $("sample").addEventListener("click", sample);
  $("morph").addEventListener("click", morph);

  request("/info").then(function (response) { return response.json(); }).then(function (body) {
    info = body;
    $("model").textContent = info.model_kind + " model, step " + info.step + ", " + info.image_size + " px";
    buildSliders();
    document.body.dataset.ready = "true";
  }).catch(function (err) { showError(err.message); });
})();
