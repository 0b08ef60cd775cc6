// Step helper of the program page (s19-forms): a step button fills the daily dose and the
// context instead of submitting; without script the button submits and the server reviews it.
document.addEventListener("click", function (ev) {
  var b = ev.target.closest && ev.target.closest("button.step[data-dose]");
  if (!b) return;
  ev.preventDefault();
  var form = b.form;
  form.querySelector("#dose_per_day").value = b.dataset.dose;
  var ctx = form.querySelector('input[name="context"][value="' + b.dataset.context + '"]');
  if (ctx) ctx.checked = true;
  var mode = form.querySelector("#mode-continuous");
  if (mode) mode.checked = true;
  form.querySelector("#dose_per_day").focus();
});
