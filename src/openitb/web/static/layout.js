// The header's menu button (narrow windows): shows and hides the navigation. Without this
// script the navigation simply stays open (style.css keys the collapse on the "js" class).
document.documentElement.classList.add("js");
document.addEventListener("DOMContentLoaded", function () {
  var button = document.querySelector(".menu-toggle");
  if (!button) return;
  var menu = document.getElementById(button.getAttribute("aria-controls"));
  button.addEventListener("click", function () {
    var open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(open));
    menu.classList.toggle("open", open);
  });
});
