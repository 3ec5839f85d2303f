// Prose assembled from hand-written sentence templates: town sketches, weather reports, short stories, recipes,
// how-to guides, letters, local news and reviews. Places are invented so no real town is misdescribed.

import { ANIMALS, COLORS, FIRST_NAMES, FOODS, JOBS, MONTHS, OBJECTS, PRODUCTS, WEEKDAYS, article, cap, clock,
  listJoin, money, person, placeName, plural, pluralNoun, thousands } from './words.mjs';

const pick = (rng, list) => rng.pick(list);

function townSketch(rng) {
  const town = placeName(rng);
  const river = placeName(rng);
  const pop = rng.int(8, 900) * 100;
  const founded = rng.int(1100, 1900);
  const trade = pick(rng, ['wool', 'timber', 'salt', 'pottery', 'fishing', 'apples', 'slate', 'paper', 'barley']);
  const sentences = [
    `${town} is a ${pick(rng, ['small', 'quiet', 'busy', 'hilly', 'low-lying'])} ${pop > 40000 ? 'town' : 'market town'} of about ${thousands(pop)} people on the ${pick(rng, ['north', 'south', 'east', 'west'])} bank of the River ${river}.`,
    pick(rng, [
      `It grew up around a ${pick(rng, ['ford', 'bridge', 'mill', 'harbour', 'crossroads'])} in the ${founded < 1500 ? 'middle ages' : 'early modern period'}, and for centuries its wealth came from ${trade}.`,
      `Records first mention it in ${founded}, when it was little more than a ${pick(rng, ['mill', 'chapel', 'ferry landing', 'toll house'])} and a handful of farms; ${trade} later made it prosperous.`,
    ]),
    pick(rng, [
      `The old centre is a tangle of narrow streets paved with ${pick(rng, COLORS)} stone, leading up to a market square where stalls still open every ${pick(rng, WEEKDAYS)}.`,
      `Most visitors arrive at the railway station, a ${pick(rng, ['red', 'yellow', 'brown', 'grey', 'dark'])} brick building from the ${rng.int(185, 191)}0s, and walk down the high street to the river.`,
      `Its best-known building is the ${pick(rng, ['corn exchange', 'town hall', 'covered market', 'old granary', 'bell tower'])}, which now houses ${pick(rng, ['a library', 'a small museum', 'the tourist office', 'a music school', 'a café and a bookshop'])}.`,
    ]),
    pick(rng, [
      `Today the largest employers are ${pick(rng, ['the hospital', 'a food-packing plant', 'the regional college', 'a software company', 'the council'])} and ${pick(rng, ['the shops of the high street', 'tourism', 'a few small factories', 'the farms around it'])}.`,
      `Since the ${pick(rng, ['mill', 'mine', 'shipyard', 'tannery'])} closed, the town has turned to ${pick(rng, ['tourism', 'light industry', 'education', 'crafts and food'])}, with mixed success.`,
    ]),
    pick(rng, [
      `In ${pick(rng, MONTHS)} the town holds a ${pick(rng, ['harvest fair', 'boat race', 'music festival', 'lantern parade', 'cheese market'])} that draws ${thousands(rng.int(2, 40) * 1000)} visitors.`,
      `The ${pick(rng, ANIMALS)} on the town's coat of arms recalls a local legend about ${pick(rng, ['a flood', 'a lost child', 'a clever miller', 'a winter that never ended'])}.`,
      `Footpaths follow the river in both directions, and in spring the meadows are full of ${pick(rng, ['wildflowers', 'lambs', 'nesting birds'])}.`,
    ]),
  ];
  return sentences.join(' ') + '\n';
}

function weatherReport(rng) {
  const region = placeName(rng);
  const days = rng.int(3, 5);
  const start = rng.int(0, 6);
  let t = rng.int(-2, 28);
  const lines = [`Weather outlook for the ${region} area`, ''];
  for (let d = 0; d < days; d++) {
    t += rng.int(-4, 4);
    const lo = t - rng.int(4, 10);
    const sky = pick(rng, ['sunny spells', 'cloudy skies', 'showers', 'a band of heavy rain', 'clear skies', 'patchy fog clearing by midday', 'light snow', 'thunderstorms in the afternoon']);
    const wind = rng.int(5, 60);
    lines.push(`${WEEKDAYS[(start + d) % 7]}: ${cap(sky)}${t < 2 && sky === 'showers' ? ', turning to sleet on high ground' : ''}. High of ${t} °C, low of ${lo} °C. ${wind > 40 ? `Strong winds, gusting to ${wind} km/h near the coast.` : `Winds ${pick(rng, ['light', 'moderate', 'fresh'])}, around ${wind} km/h from the ${pick(rng, ['north', 'south-west', 'east', 'west', 'north-east'])}.`}`);
  }
  lines.push('', pick(rng, [
    'Drivers should allow extra time in the mornings.',
    'A good week for gardening, if you pick your hours.',
    'Keep an umbrella handy; the showers will come and go quickly.',
    'Temperatures will be close to the seasonal average.',
  ]));
  return lines.join('\n') + '\n';
}

function story(rng) {
  const hero = rng.pick(FIRST_NAMES);
  const friend = rng.pick(FIRST_NAMES.filter((n) => n !== hero));
  const job = rng.pick(JOBS);
  const obj = rng.pick(OBJECTS);
  const town = placeName(rng);
  const animal = rng.pick(ANIMALS);
  const season = pick(rng, ['spring', 'summer', 'autumn', 'winter']);
  const they = rng.chance(0.5) ? ['she', 'her', 'her'] : rng.chance(0.5) ? ['he', 'him', 'his'] : ['they', 'them', 'their'];
  const [s, o, p] = they;
  const S = cap(s);
  const verb = (sing, plur) => (s === 'they' ? plur : sing);
  const paras = [
    pick(rng, [
      `${hero} was ${article(job)} in ${town}, and had been for as long as anyone could remember. Every morning ${s} ${verb('walked', 'walked')} the same way to work, past the ${pick(rng, ['bakery', 'church', 'old well', 'bus depot', 'school'])}, and every evening ${s} ${verb('came', 'came')} back the same way.`,
      `The ${season} ${hero} turned ${rng.int(19, 78)}, the ${pick(rng, ['river froze', 'rains came early', 'swallows did not return', 'market moved across town'])}, and nothing in ${town} was quite as it had been.`,
      `Nobody in ${town} expected much from ${hero}, the quiet ${job} who lived above the ${pick(rng, ['hardware shop', 'pharmacy', 'post office', 'bakery'])}.`,
    ]),
    pick(rng, [
      `One ${pick(rng, WEEKDAYS)}, ${s} found ${article(obj)} on the doorstep. It was ${pick(rng, ['old', 'wrapped in newspaper', 'still warm from the sun', 'covered in dust', 'tied with a red string'])}, and it had ${p} name written on it in handwriting ${s} did not recognise.`,
      `It began with ${article(obj)} that ${hero} noticed in the window of a shop that had been closed for years. The next day it was gone, and the shop door was open.`,
      `A letter arrived asking ${hero} to bring ${article(obj)} to the ${pick(rng, ['lighthouse', 'station', 'bridge', 'orchard'])} before the end of the month. There was no signature.`,
    ]),
    pick(rng, [
      `${S} ${verb('asked', 'asked')} ${friend}, who knew everyone and everything in ${town}. ${friend} turned the ${obj} over twice and said, "I have seen this before. Come with me."`,
      `${S} ${verb('tried', 'tried')} to forget about it, but at night ${s} kept thinking of it. In the end ${s} ${verb('went', 'went')} to ${friend}, who listened without interrupting and then laughed for a long time.`,
      `${friend}, who ran the ${pick(rng, ['ferry', 'café', 'library', 'bicycle shop'])}, recognised it at once. "That belonged to my grandmother," ${friend} said quietly.`,
    ]),
    pick(rng, [
      `The road was harder than they expected. A ${pick(rng, ['storm', 'landslide', 'flooded lane', 'broken bridge'])} forced them to turn back once, and a ${animal} followed them for most of the afternoon, as if it wanted to see how the story ended.`,
      `They searched the ${pick(rng, ['attic', 'archive', 'old boathouse', 'orchard'])} for three days. On the third evening, just as they were giving up, ${hero} noticed that the ${obj} fitted exactly into a gap in the wall.`,
      `Nothing went to plan. They missed the last bus, argued about the map, and spent the night in a barn with a ${animal} for company. In the morning the answer was obvious.`,
    ]),
    pick(rng, [
      `In the end the ${obj} was returned to where it belonged, and ${hero} went back to being ${article(job)}. But ${s} ${verb('walks', 'walk')} a different way to work now, and ${s} ${verb('stops', 'stop')} to talk to people ${s} used to pass without a word.`,
      `What they found was not treasure, or not the kind anyone would pay for: a box of letters, and a photograph of ${town} as it had been a hundred years before. ${hero} and ${friend} read them aloud all winter.`,
      `Years later, when people asked ${hero} about that ${season}, ${s} would only smile and say that some things are better found than explained.`,
    ]),
  ];
  const title = pick(rng, [`The ${cap(obj)}`, `${hero} and the ${cap(obj)}`, `A ${cap(season)} in ${town}`, `What the ${cap(animal)} Saw`]);
  return `${title}\n\n${paras.join('\n\n')}\n`;
}

const VEG = [['onion', 'onions', 'u'], ['carrot', 'carrots', 'u'], ['potato', 'potatoes', 'g'], ['leek', 'leeks', 'u'],
  ['squash', 'squash', 'g'], ['mushroom', 'mushrooms', 'g'], ['red pepper', 'red peppers', 'u'], ['cabbage', 'cabbage', 'g'],
  ['spinach', 'spinach', 'g'], ['tomato', 'tomatoes', 'u'], ['courgette', 'courgettes', 'u'], ['celery', 'celery sticks', 'u']];
const PROTEIN = [['red lentils', 'g'], ['chickpeas (cooked)', 'g'], ['white beans (cooked)', 'g'], ['eggs', 'u'], ['feta cheese', 'g'], ['tofu', 'g']];
const SPICE = [['1 teaspoon ground cumin', 'cumin'], ['2 teaspoons sweet paprika', 'paprika'], ['a thumb of fresh ginger, grated', 'ginger'],
  ['3 cloves of garlic, sliced', 'garlic'], ['1 teaspoon ground coriander', 'coriander'], ['a pinch of chilli flakes', 'chilli flakes'],
  ['1 tablespoon curry powder', 'curry powder'], ['2 bay leaves', 'bay leaves']];
const HERB = ['a handful of parsley', 'a handful of basil leaves', 'a few sprigs of thyme', 'a small bunch of coriander', 'some chopped chives'];

function recipe(rng) {
  const veg = rng.sample(VEG, 2);
  const [protein, punit] = rng.pick(PROTEIN);
  const [spice, spiceName] = rng.pick(SPICE);
  const herb = rng.pick(HERB);
  const serves = rng.int(2, 6);
  const dish = pick(rng, ['stew', 'soup', 'bake', 'traybake', 'curry', 'skillet', 'pie']);
  const mins = rng.int(3, 9) * 5;
  const amount = ([one, many, unit]) => (unit === 'g' ? `${rng.int(2, 8) * 100} g ${many}` : (() => { const n = rng.int(1, 4); return `${n} ${n === 1 ? one : many}`; })());
  const ingredients = [
    ...veg.map((v) => `- ${amount(v)}`),
    `- ${punit === 'g' ? `${rng.int(2, 5) * 100} g` : rng.int(3, 6)} ${protein}`,
    `- ${spice}`,
    `- ${plural(rng.int(1, 3), 'tablespoon')} olive oil`,
    `- ${herb}, to finish`,
    '- salt and pepper',
  ];
  const oven = dish === 'bake' || dish === 'traybake' || dish === 'pie';
  const steps = [
    `Prepare the ${veg[0][1]} and ${veg[1][1]}: wash, peel if needed, and cut into even pieces so they cook at the same rate.`,
    oven ? `Heat the oven to ${rng.int(18, 22) * 10} °C.` : `Warm the oil in a heavy pan over medium heat and cook the ${veg[0][1]} for ${rng.int(3, 8)} minutes, stirring, until soft.`,
    oven ? `Toss the vegetables with the oil, the ${spiceName} and a pinch of salt, and spread them in a dish.` : `Add the ${spiceName} and stir for a minute until it smells fragrant, then add the ${veg[1][1]}.`,
    oven ? `Roast for ${mins} minutes, turning once, until the edges are browned.` : pick(rng, [`Pour in enough water or stock to cover, bring to a simmer and cook for ${mins} minutes.`, `Cover and cook gently for ${mins} minutes, adding a splash of water if it starts to stick.`]),
    protein === 'eggs' ? `Make small hollows, crack in the eggs, and cook for another ${rng.int(5, 9)} minutes until the whites are set.` : `Stir in the ${protein.replace(/ \(cooked\)/, '')} for the last ${rng.int(5, 10)} minutes, taste, and adjust the seasoning.`,
    `Serve ${pick(rng, ['hot', 'warm', 'straight from the pan'])}, scattered with ${herb.replace(/^(a handful of |a few sprigs of |a small bunch of |some )/, '')}${rng.chance(0.5) ? ', with bread or rice on the side' : ''}.`,
  ];
  return `${cap(veg[0][1])}, ${veg[1][1]} and ${protein.replace(/ \(cooked\)/, '')} ${dish}\n\nServes ${serves}. Preparation ${rng.int(2, 6) * 5} minutes, cooking ${mins + rng.int(5, 15)} minutes.\n\nIngredients:\n${ingredients.join('\n')}\n\nMethod:\n${steps.map((st, i) => `${i + 1}. ${st}`).join('\n')}\n\n${pick(rng, ['Leftovers keep for two days in the fridge and taste better the next day.', 'Use vegetable stock to keep it vegetarian.', 'Double the quantities and freeze half for a busy week.', `Any firm vegetable in season can replace the ${veg[1][1]}.`])}\n`;
}

const HOWTO = [
  ['repot a house plant', ['Choose a pot one size larger than the current one, with a drainage hole.', 'Water the plant a day before, so the root ball holds together.', 'Tip the plant out, supporting the base of the stems with your fingers.', 'Loosen circling roots gently and trim any that are dark and soft.', 'Put fresh compost in the new pot so the top of the root ball sits 2 cm below the rim.', 'Fill around the sides, firm lightly, and water until it drains from the bottom.', 'Keep it out of direct sun for a week while the roots settle.']],
  ['fix a flat bicycle tyre', ['Remove the wheel; open the brake first if it is a rim brake.', 'Let out any remaining air and push the valve up into the tyre.', 'Use two tyre levers to lift one side of the tyre over the rim.', 'Pull out the inner tube and find the hole by pumping it up and listening.', 'Run your fingers carefully around the inside of the tyre to find what caused the puncture, and remove it.', 'Patch the tube or fit a new one, slightly inflated so it holds its shape.', 'Push the tyre back onto the rim with your thumbs, starting opposite the valve.', 'Inflate to the pressure printed on the tyre wall and refit the wheel.']],
  ['back up your photos', ['Decide what to protect: usually the whole photo folder, not just favourites.', 'Follow the 3-2-1 rule: three copies, on two kinds of storage, one of them somewhere else.', 'Copy everything to an external drive and check that a few files open from it.', 'Set up an automatic copy to a second place, such as another drive kept at a friend\'s house or an online service.', 'Write down when you did it and set a reminder to repeat or check it every month.', 'Once a year, try restoring a few photos from each copy; a backup you have never restored from is only a hope.']],
  ['write a clear email', ['Put the request or the main point in the first two sentences.', 'Use a subject line that would still make sense a month later.', 'Keep one topic per email; start a new one for a new subject.', 'If you need an answer by a date, state the date.', 'Use short paragraphs and, for several questions, a numbered list.', 'Read it once as the recipient before sending, and cut anything they do not need.']],
  ['make a simple budget', ['Add up your regular income for a month, after tax.', 'List fixed costs such as rent, insurance and transport passes.', 'Look at the last three months of spending to estimate variable costs like food and outings.', 'Subtract fixed and variable costs from income; what is left is your margin.', 'Decide in advance how much of the margin goes to savings, and move it on payday.', 'Review the numbers at the end of each month and adjust the estimates.']],
  ['debug a failing program', ['Reproduce the failure reliably, with the smallest input you can find.', 'Read the whole error message, including the line number and the call stack.', 'Form a guess about the cause and predict what you would see if it were true.', 'Test the guess with a print statement, a debugger or a small test.', 'Change one thing at a time and rerun the failing case after each change.', 'When it works, add a test that would have caught the bug, so it cannot quietly return.']],
  ['brew a good pot of tea', ['Use fresh water; water that has boiled several times tastes flat.', 'Warm the pot with a little hot water and pour it away.', 'Use about one teaspoon of leaves per cup, plus one for the pot if you like it strong.', 'For black tea, pour on water just off the boil; for green tea, let it cool for a few minutes first.', 'Steep black tea for three to five minutes and green tea for two to three.', 'Pour all of it out or remove the leaves, so the tea does not turn bitter.']],
  ['plant a vegetable bed', ['Pick a spot with at least six hours of sun a day.', 'Clear weeds and dig the soil to a spade\'s depth, removing stones.', 'Work in a few centimetres of compost.', 'Sow or plant in rows running north to south so every plant gets light.', 'Water gently and regularly, at the roots rather than on the leaves.', 'Mulch between the rows once the seedlings are up to keep moisture in and weeds down.']],
];

function howTo(rng) {
  const [task, steps] = rng.pick(HOWTO);
  const intro = pick(rng, [
    `Here is how to ${task}. It takes less time than you might think.`,
    `How to ${task}`,
    `Many people put off learning to ${task}. The steps below are all you need.`,
    `A short guide: how to ${task}.`,
  ]);
  const numbered = rng.chance(0.6);
  const body = numbered ? steps.map((s, i) => `${i + 1}. ${s}`).join('\n') : steps.map((s, i) => (i === 0 ? `First, ${s.charAt(0).toLowerCase()}${s.slice(1)}` : i === steps.length - 1 ? `Finally, ${s.charAt(0).toLowerCase()}${s.slice(1)}` : s)).join(' ');
  const outro = pick(rng, ['', 'The first time is the slowest; after that it becomes routine.', 'If something goes wrong, go back one step rather than starting over.', 'Take your time over the first steps; they decide how well the rest goes.']);
  return `${intro}\n\n${body}\n${outro ? `\n${outro}\n` : ''}`;
}

function letter(rng) {
  const from = rng.pick(FIRST_NAMES);
  const to = rng.pick(FIRST_NAMES.filter((n) => n !== from));
  const day = rng.pick(WEEKDAYS);
  const t = rng.int(8, 17) * 60 + rng.pick([0, 30]);
  const kind = rng.int(0, 3);
  let body;
  if (kind === 0) {
    body = `${pick(rng, ['Could we move', 'Would it be possible to move', 'I need to ask if we can move'])} our meeting from ${day} to ${WEEKDAYS[(WEEKDAYS.indexOf(day) + rng.int(1, 3)) % 7]} at ${clock(t)}? ${pick(rng, ['Something came up at the last minute.', 'The report will not be ready before then.', 'I will be travelling on ' + day + '.'])} I will bring the ${pick(rng, ['figures', 'draft', 'samples', 'schedule'])} so we can go through them together.\n\nIf that time does not work for you, send me two or three that do and I will fit in.`;
  } else if (kind === 1) {
    body = `Thank you for ${pick(rng, ['the lovely dinner on ' + day, 'looking after the cat while I was away', 'lending me your ladder', 'your help with the move'])}. ${pick(rng, ['It meant a great deal.', 'I do not know what I would have done without you.', 'It made a hard week much easier.'])} ${pick(rng, ['Next time it is my turn, and I will not take no for an answer.', 'I have a jar of ' + rng.pick(['honey', 'jam', 'pickles']) + ' for you, which I will drop off this weekend.', 'Let me know when you are free for coffee.'])}`;
  } else if (kind === 2) {
    const [item, price] = rng.pick(PRODUCTS);
    body = `On ${day} I bought ${article(item)} from your shop for ${money(price)}. ${pick(rng, ['It stopped working after two days.', 'When I opened it at home, it was damaged.', 'It is not the model shown in the advertisement.'])} I still have the receipt.\n\nI would like a ${pick(rng, ['replacement', 'full refund'])}. I can bring the ${item} back any weekday after ${clock(t)}. Please let me know how you would like to proceed.`;
  } else {
    body = `We are having a small ${pick(rng, ['garden party', 'housewarming', 'birthday dinner', 'picnic by the river'])} on ${day} from ${clock(t)}, and we would love you to come. ${pick(rng, ['Bring nothing but yourself.', 'If you like, bring something to share.', 'There will be music, and far too much food.'])} ${pick(rng, ['Let me know by Thursday so I know how many chairs to borrow.', 'Children and dogs are welcome.', 'It is ten minutes from the station; I will send directions.'])}`;
  }
  const greet = pick(rng, [`Dear ${to},`, `Hi ${to},`, `Hello ${to},`]);
  const sign = pick(rng, ['Best wishes,', 'Kind regards,', 'Thanks again,', 'See you soon,', 'All the best,']);
  return `${greet}\n\n${body}\n\n${sign}\n${from}\n`;
}

function news(rng) {
  const town = placeName(rng);
  const who = person(rng);
  const kind = rng.int(0, 2);
  if (kind === 0) {
    const cost = rng.int(2, 40) * 100000;
    const months = rng.int(4, 30);
    return `${cap(town)} bridge reopens after ${months} months\n\nThe ${pick(rng, ['old stone', 'iron', 'footpath', 'road'])} bridge over the River ${placeName(rng)} reopened on ${pick(rng, WEEKDAYS)} after ${months} months of repairs costing $${thousands(cost)}. Engineers found that ${pick(rng, ['two of the piers had been undermined by floods', 'the deck was corroding faster than expected', 'the foundations needed strengthening'])}, which delayed the work by ${rng.int(2, 9)} months.\n\n"${pick(rng, ['It has been a long wait, and we thank residents for their patience', 'The bridge should now last another hundred years', 'We found problems nobody could have seen from the surface'])}," said ${who}, who led the project. Traffic is limited to ${rng.int(3, 18)} tonnes, and a new footpath has been added on the ${pick(rng, ['north', 'south', 'upstream', 'downstream'])} side.\n`;
  }
  if (kind === 1) {
    const entries = rng.int(20, 140);
    const winner = person(rng);
    return `Record entries at ${town} science fair\n\nA record ${entries} projects were entered in this year's ${town} schools science fair, up from ${entries - rng.int(5, 19)} last year. The top prize went to ${winner}, ${rng.int(11, 17)}, for a project measuring ${pick(rng, ['how quickly different soils absorb rain', 'noise levels around the school at different times of day', 'which materials keep ice frozen longest', 'how the shape of a paper wing changes its flight'])}.\n\n"${pick(rng, ['I repeated every measurement three times, because the first results looked too good.', 'The hardest part was keeping everything the same except the one thing I was testing.', 'I learned more from the experiments that failed.'])}" ${winner.split(' ')[0]} said. The judges, led by ${who}, praised the "${pick(rng, ['careful records', 'clear charts', 'honest discussion of errors', 'original question'])}" of the winning entry.\n`;
  }
  const visitors = rng.int(3, 60) * 1000;
  return `${cap(pick(rng, ['lantern parade', 'harvest festival', 'river regatta', 'food market']))} draws crowds to ${town}\n\nAn estimated ${thousands(visitors)} people came to ${town} on ${pick(rng, WEEKDAYS)} for the annual ${pick(rng, ['lantern parade', 'harvest festival', 'regatta', 'food market'])}, despite ${pick(rng, ['grey skies', 'a morning of rain', 'a cold wind', 'roadworks on the main approach'])}. Organisers said ${rng.int(40, 220)} volunteers helped run the event, and local cafés reported their busiest day of the year.\n\n${who}, who has ${pick(rng, ['organised', 'attended', 'performed at'])} the event for ${plural(rng.int(2, 30), 'year')}, said: "${pick(rng, ['Every year I think it cannot get bigger, and every year it does.', 'It is the one day when the whole town is in the same place.', 'The children make it. They always do.'])}"\n`;
}

function review(rng) {
  const [item, price] = rng.pick(PRODUCTS);
  const stars = rng.int(1, 5);
  const good = pick(rng, ['well made', 'good value', 'exactly as described', 'sturdier than it looks', 'pleasant to use every day']);
  const bad = pick(rng, ['the packaging was excessive', 'delivery took ten days', 'the colour is darker than in the photos', 'the instructions were confusing', 'it is heavier than I expected']);
  const body = stars >= 4
    ? `${cap(pluralNoun(item))} are not exciting, but this one is ${good}. I have used it for ${plural(rng.int(2, 11), 'week')} without problems. My only complaint is that ${bad}. At ${money(price)} I would buy it again.`
    : stars === 3
      ? `It does the job. It is ${good}, but ${bad}, and for ${money(price)} I expected a bit more. Fine if you find it on sale.`
      : `Disappointing. ${cap(bad)}, and after ${plural(rng.int(2, 9), 'day')} it ${pick(rng, ['broke', 'stopped working', 'started to fall apart'])}. I returned it and got my ${money(price)} back without any trouble, which is the only reason this is not one star.`;
  return `${'★'.repeat(stars)}${'☆'.repeat(5 - stars)} ${pick(rng, ['Review', 'Customer review', 'Verified purchase'])}: ${item}\n\n${stars === 1 ? body.replace(', which is the only reason this is not one star', '') : body}\n`;
}

function diary(rng) {
  const day = rng.pick(WEEKDAYS);
  const month = rng.pick(MONTHS);
  const date = rng.int(1, 28);
  const items = rng.sample([
    `Woke early and went for a walk before breakfast. The ${rng.pick(ANIMALS)} was back by the pond.`,
    `Spent the morning on the ${pick(rng, ['report', 'garden', 'tax forms', 'kitchen shelves', 'novel'])}. Slow progress, but progress.`,
    `Lunch with ${rng.pick(FIRST_NAMES)}, who is thinking of moving to ${placeName(rng)}.`,
    `The ${pick(rng, ['boiler', 'bicycle chain', 'printer', 'kitchen tap'])} broke again. Fixed it with ${pick(rng, ['a video and a lot of patience', 'a borrowed spanner', 'a paper clip, somehow'])}.`,
    `Read ${rng.int(20, 90)} pages in the evening. I can never guess how a book will end, and I like that.`,
    `Rain all afternoon, so I cooked ${pick(rng, ['soup', 'bread', 'a curry', 'far too many biscuits'])} and listened to the radio.`,
    `Called my ${pick(rng, ['mother', 'brother', 'grandfather', 'aunt', 'old teacher'])}. We talked for an hour about nothing and it was the best part of the day.`,
    `Walked ${rng.int(4, 19)} km along the river. My legs will complain tomorrow.`,
  ].map((text, i) => [i, text]), rng.int(3, 5)).sort((a, b) => a[0] - b[0]).map(([, text]) => text);
  return `${day} ${date} ${month}\n\n${items.join(' ')}\n\n${pick(rng, ['Tomorrow: finish what I started.', 'Early night.', 'Note to self: buy more tea.', 'A good day, all in all.'])}\n`;
}

const KINDS = [townSketch, weatherReport, story, story, recipe, howTo, letter, news, review, diary];

/** One prose document; sometimes two short pieces of one kind joined. */
export function proseDocument(rng) {
  const kind = rng.pick(KINDS);
  const first = kind(rng);
  if (first.length < 900 && rng.chance(0.6)) return `${first}\n${kind(rng)}`;
  return first;
}
